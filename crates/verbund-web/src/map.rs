//! A schematic map of Germany with the sites on it, as inline SVG (no tiles, no script,
//! nothing fetched from a map service).
//!
//! The outline is a coarse polygon of the national border (about 90 points, accurate to
//! a few kilometres), projected equirectangularly with the longitude scaled by cos 51°,
//! which is close enough at Germany's latitudes for a picture of where sites are.

/// The border, clockwise from the Danish border, as (longitude, latitude).
const BORDER: &[(f64, f64)] = &[
    (8.66, 54.91),
    (9.44, 54.83),
    (9.9, 54.78),
    (10.3, 54.45),
    (10.9, 54.38),
    (11.1, 54.45),
    (11.0, 54.0),
    (11.6, 54.15),
    (12.3, 54.4),
    (13.1, 54.6),
    (13.6, 54.65),
    (14.2, 53.95),
    (14.4, 53.3),
    (14.15, 52.85),
    (14.65, 52.55),
    (14.55, 52.1),
    (14.75, 51.6),
    (15.04, 51.25),
    (14.8, 50.85),
    (14.3, 51.05),
    (13.5, 50.75),
    (12.95, 50.4),
    (12.3, 50.2),
    (12.1, 50.3),
    (12.5, 49.8),
    (12.4, 49.5),
    (13.0, 49.3),
    (13.8, 48.8),
    (13.5, 48.55),
    (12.95, 48.25),
    (12.75, 47.75),
    (13.0, 47.5),
    (12.2, 47.7),
    (11.2, 47.4),
    (10.5, 47.55),
    (10.2, 47.3),
    (9.6, 47.55),
    (8.9, 47.65),
    (8.6, 47.7),
    (7.6, 47.6),
    (7.55, 48.1),
    (7.8, 48.55),
    (8.2, 48.97),
    (7.6, 49.08),
    (6.9, 49.2),
    (6.4, 49.45),
    (6.35, 49.8),
    (6.1, 50.15),
    (6.4, 50.35),
    (6.05, 50.75),
    (5.9, 51.05),
    (6.2, 51.5),
    (5.95, 51.8),
    (6.8, 51.95),
    (7.05, 52.25),
    (6.7, 52.5),
    (7.05, 52.65),
    (7.2, 53.0),
    (7.25, 53.3),
    (7.0, 53.6),
    (7.9, 53.75),
    (8.5, 53.55),
    (8.9, 53.9),
    (8.85, 54.3),
    (8.6, 54.5),
];

const WEST: f64 = 5.5;
const NORTH: f64 = 55.2;
const SCALE: f64 = 60.0;
const LON_FACTOR: f64 = 0.6293; // cos 51°

/// The SVG's width and height.
pub const WIDTH: f64 = (15.5 - WEST) * LON_FACTOR * SCALE;
pub const HEIGHT: f64 = (NORTH - 47.0) * SCALE;

/// Where a point lies on the map.
pub fn project(longitude: f64, latitude: f64) -> (f64, f64) {
    (
        (longitude - WEST) * LON_FACTOR * SCALE,
        (NORTH - latitude) * SCALE,
    )
}

/// The border as an SVG path.
pub fn outline() -> String {
    let mut d = String::new();
    for (i, (lon, lat)) in BORDER.iter().enumerate() {
        let (x, y) = project(*lon, *lat);
        d.push_str(&format!("{}{x:.1},{y:.1} ", if i == 0 { "M" } else { "L" }));
    }
    d.push('Z');
    d
}

/// A site on the map.
pub struct Pin {
    pub x: f64,
    pub y: f64,
    pub label: String,
    pub health: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cities_land_inside_the_picture_in_the_right_order() {
        let (hx, hy) = project(9.99, 53.55); // Hamburg
        let (mx, my) = project(11.58, 48.14); // München
        let (bx, _) = project(13.40, 52.52); // Berlin
        assert!(hy < my && hx < mx && mx < bx);
        for (x, y) in [(hx, hy), (mx, my)] {
            assert!(x > 0.0 && x < WIDTH && y > 0.0 && y < HEIGHT);
        }
        assert!(outline().starts_with('M') && outline().ends_with('Z'));
    }
}
