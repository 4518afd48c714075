//! HTTP on loopback for the demo's and the chaos test's calls and checks.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// The body of a GET with a bearer token, as text.
pub fn text(url: &str, token: &str) -> Result<String> {
    let mut resp = agent()
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .with_context(|| format!("GET {url}"))?;
    Ok(resp.body_mut().read_to_string()?)
}

/// True for a 2xx answer.
pub fn ok(url: &str) -> Result<bool> {
    Ok(agent().get(url).call()?.status().is_success())
}

/// A GET with a bearer token; the status and JSON answer.
pub fn get_json(url: &str, token: &str) -> Result<(u16, Value)> {
    let mut resp = agent()
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.body_mut().read_json().unwrap_or(Value::Null)))
}

/// A request with a JSON body (`POST`, `PUT`, `PATCH`) and a bearer token; the status and JSON
/// answer.
pub fn send_json(method: &str, url: &str, token: &str, body: &Value) -> Result<(u16, Value)> {
    let agent = agent();
    let auth = format!("Bearer {token}");
    let req = match method {
        "PUT" => agent.put(url),
        "PATCH" => agent.patch(url),
        _ => agent.post(url),
    };
    let mut resp = req
        .header("Authorization", &auth)
        .send_json(body)
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.body_mut().read_json().unwrap_or(Value::Null)))
}

/// A form POST (`application/x-www-form-urlencoded`); the status and JSON answer.
pub fn post_form(url: &str, form: &[(&str, &str)]) -> Result<(u16, Value)> {
    let mut resp = agent()
        .post(url)
        .send_form(form.iter().copied())
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.body_mut().read_json().unwrap_or(Value::Null)))
}
