//! The page frame: navigation, the signed-in token and sign-out, inline CSS (no external
//! asset: the console works offline), and the small pieces pages share (CSRF field, times,
//! keyset pager).

use axum::http::StatusCode;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::session::Session;

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;background:#f5f6f8}
header{display:flex;align-items:center;gap:1.2rem;padding:.6rem 1.2rem;background:#1d2430;color:#fff}
header .brand{font-weight:700;letter-spacing:.02em}
header nav{display:flex;gap:.2rem;flex-wrap:wrap;flex:1}
header nav a{color:#c9d1dc;text-decoration:none;padding:.25rem .55rem;border-radius:4px}
header nav a.on,header nav a:hover{background:#34405a;color:#fff}
header form{margin:0}
header .who{color:#c9d1dc;font-size:12px}
main{padding:1.2rem;max-width:1280px}
h1{font-size:1.35rem;margin:.2rem 0 1rem}
h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde1e7}
th,td{padding:.35rem .6rem;border-bottom:1px solid #e8ebf0;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.03em;color:#4a5568}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:.8rem}
a.card{color:inherit;text-decoration:none}
.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:.7rem .9rem}
.card .label{font-size:12px;color:#5a6577}
.card .value{font-size:1.5rem;font-weight:650;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37}.warn{color:#9a6700}.bad{color:#cf222e}.muted{color:#6b7585}
.badge{display:inline-block;padding:0 .45rem;border-radius:9px;font-size:12px;background:#e8ebf0}
.badge.ok{background:#dafbe1}.badge.warn{background:#fff8c5}.badge.bad{background:#ffebe9}
.flash{padding:.5rem .8rem;border-radius:4px;background:#dafbe1;border:1px solid #aceebb}
.flash.error{background:#ffebe9;border-color:#ffcecb}
button{font:inherit;padding:.25rem .7rem;border:1px solid #b6bfcc;border-radius:4px;background:#fff;cursor:pointer}
button.primary{background:#1f6feb;border-color:#1f6feb;color:#fff}
button.danger{border-color:#cf222e;color:#cf222e}
header button{background:transparent;color:#c9d1dc;border-color:#4a5568}
input[type=text],input[type=password],input[type=search]{font:inherit;padding:.3rem .5rem;border:1px solid #b6bfcc;border-radius:4px;min-width:22rem}
form.inline{display:inline}
.pager{margin:.8rem 0;display:flex;gap:1rem}
.bar{height:8px;background:#e8ebf0;border-radius:4px;overflow:hidden;min-width:120px}
.bar>span{display:block;height:100%;background:#1f6feb}
.signin{max-width:560px;margin:8vh auto;background:#fff;padding:1.5rem 2rem;border:1px solid #dde1e7;border-radius:8px}
.signin input{width:100%;margin:.4rem 0 .8rem}
"#;

/// The pages in the navigation: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/console", "Overview"),
    ("/console/problems", "Problems"),
    ("/console/trace", "Trace"),
    ("/console/catalog", "Catalog runs"),
    ("/console/rules", "Rules push"),
    ("/console/drafts", "Draft orders"),
    ("/console/ownership", "Field ownership"),
    ("/console/salesforce", "Salesforce"),
];

fn head(title: &str, refresh_secs: Option<u32>) -> Markup {
    html! {
        (DOCTYPE)
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        @if let Some(secs) = refresh_secs { meta http-equiv="refresh" content=(secs); }
        title { (title) " · Wholesail console" }
        style { (PreEscaped(CSS)) }
    }
}

/// A page of a signed-in session: the navigation with `active` lit, then `content`. With
/// `refresh_secs`, the browser reloads it (live progress).
pub fn page(
    session: &Session,
    active: &str,
    title: &str,
    refresh_secs: Option<u32>,
    content: Markup,
) -> Markup {
    html! {
        (head(title, refresh_secs))
        header {
            span.brand { "Wholesail" }
            nav {
                @for (path, label) in NAV {
                    a.on[*path == active] href=(path) { (label) }
                }
            }
            span.who { "signed in as " b { (session.caller.name) }
                @if !session.can_write() { " (read only)" } }
            form method="post" action="/console/sign-out" {
                (csrf_field(session))
                button type="submit" { "Sign out" }
            }
        }
        main { h1 { (title) } (content) }
    }
}

/// A page without navigation (sign-in).
pub fn bare(title: &str, content: Markup) -> Markup {
    html! {
        (head(title, None))
        div.signin { (content) }
    }
}

/// The page of an error answer.
pub fn error_page(status: StatusCode, message: &str) -> Markup {
    bare(
        status.canonical_reason().unwrap_or("Error"),
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p.flash.error role="alert" { (message) }
            p { a href="/console" { "Back to the console" } }
        },
    )
}

/// The hidden CSRF field every form of `session` carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A POST button of `session` to `action` (with its CSRF field), for sessions that may write.
pub fn action_button(session: &Session, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(session))
            button class=(class) type="submit" { (label) }
        }
    }
}

/// A time as RFC 3339 (UTC, seconds).
pub fn at(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// A time as RFC 3339 with milliseconds (timelines).
pub fn at_millis(t: OffsetDateTime) -> String {
    let t = t
        .replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// An optional time, or a dash.
pub fn at_opt(t: Option<OffsetDateTime>) -> String {
    t.map_or_else(|| "–".to_owned(), at)
}

/// Seconds as a short duration (`42 s`, `3.5 min`, `2.0 h`).
pub fn secs(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// The keyset pager: "first page" and, when there is one, the next page at `next` (the query
/// string of its cursor, e.g. `before=42`).
pub fn pager(base: &str, next: Option<String>, on_first: bool) -> Markup {
    html! {
        div.pager {
            @if !on_first { a href=(base) { "« Newest" } }
            @if let Some(query) = next { a rel="next" href={ (base) "?" (query) } { "Older »" } }
        }
    }
}

/// A flash message from the `done` query parameter a write redirected with.
pub fn flash(done: Option<&str>) -> Markup {
    html! { @if let Some(d) = done { p.flash role="status" { (d) } } }
}
