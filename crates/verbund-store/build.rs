//! Rebuilds the store when a migration is added or changed: `sqlx::migrate!` embeds the
//! migrations folders at compile time, and Cargo cannot see them otherwise.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
