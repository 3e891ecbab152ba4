//! RFC 7591 §2 display metadata (and OIDC Registration §2 `application_type`): what a client
//! says about itself for people to see (`client_uri`, `logo_uri`, `policy_uri`, `tos_uri`,
//! `contacts`, `software_id`, `software_version`). Part of the one validator of client metadata
//! ([`super::registration::apply`] calls [`check`]); the values end up on the consent page.
//!
//! The URIs are absolute `https` only: the consent page links to them and loads the logo, so an
//! `http` value would be mixed content (and a tracking or tampering channel), and any other
//! scheme (`javascript:`, `data:`) is refused outright. No userinfo (`https://bank.example@evil`
//! misleads the reader), no control characters, spaces or characters RFC 3986 excludes (`"`,
//! `<`, `>`, …), bounded length; a logo has no
//! fragment. Contacts are e-mail addresses (bounded count and length). `application_type` is
//! `web` (the default) or `native`; the redirect URI rules are the server's own for both.

use super::error::ErrorCode;
use super::model::{ApplicationType, ClientDisplay};
use super::registration::{Field, Invalid, Metadata};

/// The longest URI accepted.
pub const MAX_URI: usize = 2000;
/// The most contacts.
pub const MAX_CONTACTS: usize = 10;
/// The longest contact (RFC 5321's path limit).
pub const MAX_CONTACT: usize = 254;
/// The longest `software_id` / `software_version`.
pub const MAX_SOFTWARE: usize = 200;

fn invalid(field: Field, description: String) -> Invalid {
    Invalid {
        code: ErrorCode::InvalidClientMetadata,
        field,
        description,
    }
}

/// Characters RFC 3986 never allows unencoded in a URI.
const NOT_IN_URIS: [char; 9] = ['"', '<', '>', '\\', '^', '`', '{', '|', '}'];

/// No spaces, no control characters.
fn printable(s: &str) -> bool {
    !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// An absolute https URI with a host and no userinfo (and no fragment when `fragment` is
/// false), given as such (`https://…`, not something the parser would repair).
fn https_uri(field: Field, u: &str, fragment: bool) -> Result<String, Invalid> {
    let name = field.name();
    let parsed = url::Url::parse(u).ok();
    let ok = u.len() <= MAX_URI
        && printable(u)
        && !u.contains(NOT_IN_URIS)
        && u.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        && parsed.as_ref().is_some_and(|p| {
            p.scheme() == "https"
                && p.host_str().is_some_and(|h| !h.is_empty())
                && p.username().is_empty()
                && p.password().is_none()
                && (fragment || p.fragment().is_none())
        });
    if ok {
        Ok(u.to_string())
    } else {
        Err(invalid(
            field,
            format!(
                "{name} must be an absolute https URI without userinfo{}, at most {MAX_URI} characters",
                if fragment { "" } else { " or fragment" }
            ),
        ))
    }
}

/// One e-mail-ish address: `local@domain`, the domain with a dot, printable, bounded.
fn contact_ok(c: &str) -> bool {
    let Some((local, domain)) = c.rsplit_once('@') else {
        return false;
    };
    c.len() <= MAX_CONTACT
        && printable(c)
        && !local.is_empty()
        && !local.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.contains('.')
        && !domain.contains(['<', '>', '"', '(', ')', ',', ';', ':', '[', ']'])
}

/// A short printable label (`software_id`, `software_version`).
fn label(field: Field, v: &str) -> Result<String, Invalid> {
    if v.is_empty() || v.len() > MAX_SOFTWARE || v.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!(
                "{} must be 1 to {MAX_SOFTWARE} characters without control characters",
                field.name()
            ),
        ));
    }
    Ok(v.to_string())
}

/// The display metadata of `m`, checked (see the module documentation).
pub fn check(m: &Metadata) -> Result<ClientDisplay, Invalid> {
    let uri = |field: Field, v: &Option<String>, fragment: bool| {
        v.as_deref().map(|u| https_uri(field, u, fragment)).transpose()
    };
    let contacts = m.contacts.clone().unwrap_or_default();
    if contacts.len() > MAX_CONTACTS {
        return Err(invalid(
            Field::Contacts,
            format!("contacts may list at most {MAX_CONTACTS} addresses"),
        ));
    }
    if let Some(c) = contacts.iter().find(|c| !contact_ok(c)) {
        return Err(invalid(
            Field::Contacts,
            format!(
                "contacts: `{}` is not an e-mail address (at most {MAX_CONTACT} characters)",
                c.chars().take(64).collect::<String>()
            ),
        ));
    }
    let application_type = match m.application_type.as_deref() {
        None => ApplicationType::Web,
        Some(t) => ApplicationType::parse(t)
            .ok_or_else(|| invalid(Field::ApplicationType, "application_type must be web or native".into()))?,
    };
    Ok(ClientDisplay {
        client_uri: uri(Field::ClientUri, &m.client_uri, true)?,
        logo_uri: uri(Field::LogoUri, &m.logo_uri, false)?,
        policy_uri: uri(Field::PolicyUri, &m.policy_uri, true)?,
        tos_uri: uri(Field::TosUri, &m.tos_uri, true)?,
        contacts,
        software_id: m
            .software_id
            .as_deref()
            .map(|v| label(Field::SoftwareId, v))
            .transpose()?,
        software_version: m
            .software_version
            .as_deref()
            .map(|v| label(Field::SoftwareVersion, v))
            .transpose()?,
        application_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: serde_json::Value) -> Result<ClientDisplay, Invalid> {
        check(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn every_field_round_trips() {
        let d = run(serde_json::json!({
            "client_uri": "https://app.example/", "logo_uri": "https://cdn.example/logo.png",
            "policy_uri": "https://app.example/privacy#data", "tos_uri": "https://app.example/tos",
            "contacts": ["ops@app.example"], "software_id": "4NRB1-0XZABZI9E6-5SM3R",
            "software_version": "2.1", "application_type": "native"
        }))
        .unwrap();
        assert_eq!(d.logo_uri.as_deref(), Some("https://cdn.example/logo.png"));
        assert_eq!(d.policy_uri.as_deref(), Some("https://app.example/privacy#data"));
        assert_eq!(d.contacts, ["ops@app.example"]);
        assert_eq!(d.application_type, ApplicationType::Native);
        assert_eq!(run(serde_json::json!({})).unwrap(), ClientDisplay::default());
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let long = format!("https://a.example/{}", "x".repeat(MAX_URI));
        let cases: Vec<(&str, serde_json::Value, Field)> = vec![
            ("logo_uri", "http://cdn.example/l.png".into(), Field::LogoUri),
            ("logo_uri", "https://cdn.example/l.png#x".into(), Field::LogoUri),
            ("logo_uri", "javascript:alert(1)".into(), Field::LogoUri),
            (
                "client_uri",
                "https://bank.example@evil.example/".into(),
                Field::ClientUri,
            ),
            ("client_uri", "https:app.example".into(), Field::ClientUri),
            ("client_uri", "/relative".into(), Field::ClientUri),
            ("policy_uri", "data:text/html,x".into(), Field::PolicyUri),
            ("policy_uri", "https://a.example/ x".into(), Field::PolicyUri),
            (
                "policy_uri",
                "https://a.example/?q=\"><script>".into(),
                Field::PolicyUri,
            ),
            ("tos_uri", long.into(), Field::TosUri),
            ("contacts", serde_json::json!(["not-an-address"]), Field::Contacts),
            ("contacts", serde_json::json!(["a@b"]), Field::Contacts),
            ("contacts", serde_json::json!(["a b@c.example"]), Field::Contacts),
            (
                "contacts",
                serde_json::json!(vec!["a@b.example"; MAX_CONTACTS + 1]),
                Field::Contacts,
            ),
            ("software_id", "".into(), Field::SoftwareId),
            (
                "software_version",
                "x".repeat(MAX_SOFTWARE + 1).into(),
                Field::SoftwareVersion,
            ),
            ("software_version", "1.0\n".into(), Field::SoftwareVersion),
            ("application_type", "browser".into(), Field::ApplicationType),
        ];
        for (name, value, field) in cases {
            let e = run(serde_json::json!({ name: value.clone() })).unwrap_err();
            assert_eq!((e.code, e.field), (ErrorCode::InvalidClientMetadata, field), "{value}");
            assert!(e.description.starts_with(name), "{}", e.description);
        }
    }
}
