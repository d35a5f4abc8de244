//! The browser console at `/console/`: a page, its script and its style sheet, embedded in the
//! binary (no build step) and served gzip-compressed when the browser accepts it.
//!
//! The console is a client of the public API only: it signs in with an API token kept in the
//! tab's `sessionStorage` and sends it as a bearer token (no cookie, so no CSRF surface), follows
//! `GET /api/events`, reads `GET /metrics` and `GET /health`. Its pages get a content security
//! policy of their own that allows the console's own script and style and nothing inline.

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Compress;
use actix_web::{web, HttpResponse};

use super::error::HttpError;

/// The console's content security policy: its own script, style and API; nothing inline, no
/// other origin; microphone audio only as in-page blobs.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; media-src 'self' blob:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// Every file of the console (`index.html` answers `/console/`).
const ASSETS: [Asset; 5] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("console/index.html"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/console.js"),
    },
    Asset {
        name: "softphone.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/softphone.js"),
    },
    Asset {
        name: "softphone-worklet.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("console/softphone-worklet.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("console/console.css"),
    },
];

/// Registers `/console` (a redirect to `/console/`) and the console's files.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console").get(to_console))
        .service(
            web::scope("/console")
                .wrap(Compress::default())
                .service(web::resource("/").get(index))
                .service(web::resource("/{file}").get(file)),
        );
}

async fn to_console() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

async fn index() -> Result<HttpResponse, HttpError> {
    serve("index.html")
}

async fn file(name: web::Path<String>) -> Result<HttpResponse, HttpError> {
    serve(&name)
}

fn serve(name: &str) -> Result<HttpResponse, HttpError> {
    let asset = ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .ok_or(HttpError::NotFound)?;
    let mut response = HttpResponse::Ok()
        .content_type(asset.content_type)
        .body(asset.body);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_CSP),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_its_script_and_style_and_has_nothing_inline() {
        let page = ASSETS[0].body;
        assert!(page.contains(r#"src="softphone.js""#), "{page}");
        assert!(page.contains(r#"src="console.js""#), "{page}");
        assert!(page.contains(r#"href="console.css""#), "{page}");
        // Every script is a file (the policy would block an inline one anyway).
        assert_eq!(page.matches("<script").count(), 2, "{page}");
        assert_eq!(page.matches("<script src=").count(), 2, "{page}");
        assert!(!page.contains(" style=") && !page.contains(" onclick="));
    }

    #[test]
    fn the_policy_allows_no_inline_script_nor_other_origins() {
        let script = CONSOLE_CSP
            .split(';')
            .map(str::trim)
            .find(|directive| directive.starts_with("script-src"))
            .unwrap();
        assert_eq!(script, "script-src 'self'");
        assert!(!CONSOLE_CSP.contains("unsafe") && !CONSOLE_CSP.contains('*'));
    }
}
