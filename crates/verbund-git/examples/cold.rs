//! One cold write at the design scale, for measuring peak memory from outside:
//! `/usr/bin/time -f %M cargo run --release -p verbund-git --example cold -- <dir>`
//! (`VERBUND_BENCH_BOOKINGS` sets the number of bookings, default 100,000).

#[path = "../benches/data.rs"]
mod data;

use std::time::Instant;

use verbund_git::{Author, DesiredStateRepo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: cold <empty-or-missing-folder>")?;
    let total = data::bookings();
    let repo = DesiredStateRepo::open_or_init(&dir)?;
    let started = Instant::now();
    let mut change = repo.change()?;
    let (mut files, mut bytes) = (0usize, 0usize);
    for site in 0..data::SITES {
        let site_files = data::site_files(site, total);
        files += site_files.len();
        bytes += site_files.iter().map(|f| f.content.len()).sum::<usize>();
        change.put_folder(&data::site_folder(site), site_files)?;
    }
    let author = Author {
        name: "bench".into(),
        email: "bench@example.org".into(),
    };
    let commit = change.commit(&author, "cold", &[1])?;
    println!(
        "cold: {total} bookings, {files} files, {} MB in {:.2} s (incl. rendering the synthetic files), commit {}",
        bytes / 1_000_000,
        started.elapsed().as_secs_f64(),
        commit.map(|c| c.0).unwrap_or_default()
    );
    Ok(())
}
