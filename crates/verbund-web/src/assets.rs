//! Stylesheets, fonts and the one script, compiled into the binary.
//!
//! KERN UX (`@kern-ux/native`, EUPL-1.2) is vendored under `assets/kern/` from the npm
//! package named in `assets/kern/VERSION`; `scripts/update-kern` refreshes it. Nothing is
//! fetched at run time, so the portal works offline and behind any proxy.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The KERN version the portal is styled with.
pub const KERN_VERSION: &str = include_str!("../assets/kern/VERSION");

struct Asset {
    path: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "kern.min.css",
        mime: "text/css; charset=utf-8",
        body: include_bytes!("../assets/kern/kern.min.css"),
    },
    Asset {
        path: "portal.css",
        mime: "text/css; charset=utf-8",
        body: include_bytes!("../assets/portal.css"),
    },
    Asset {
        path: "portal.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/portal.js"),
    },
    Asset {
        path: "fonts/FiraSans-Regular.woff2",
        mime: "font/woff2",
        body: include_bytes!("../assets/kern/fonts/FiraSans-Regular.woff2"),
    },
    Asset {
        path: "fonts/FiraSans-SemiBold.woff2",
        mime: "font/woff2",
        body: include_bytes!("../assets/kern/fonts/FiraSans-SemiBold.woff2"),
    },
    Asset {
        path: "fonts/FiraSans-Bold.woff2",
        mime: "font/woff2",
        body: include_bytes!("../assets/kern/fonts/FiraSans-Bold.woff2"),
    },
];

/// `GET /assets/{file}`: cacheable for a day (the layout links them with a version query).
pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.path == file) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.mime),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_vendored_kern_stylesheet_is_the_real_one() {
        let css = std::str::from_utf8(super::ASSETS[0].body).unwrap();
        assert!(css.contains(".kern-btn--primary") && css.contains(".kern-form-input__input"));
        assert!(super::KERN_VERSION.trim().starts_with("2."));
    }
}
