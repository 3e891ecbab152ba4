//! Rich Authorization Requests (RFC 9396): the shape of `authorization_details` (the reference
//! `AuthorizationDetailDTO`: type, identifier, actions, data_types, locations, constraints),
//! validation against the configured types, coverage for narrowing on refresh (SPEC §4 rule 7),
//! and plain-words descriptions for the consent page.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AuthorizationDetailDTO)]
pub struct Detail {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub actions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub locations: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<Object>)]
    pub constraints: Option<serde_json::Map<String, Value>>,
}

/// Parses and validates a request's `authorization_details`: a non-empty JSON array of
/// objects with a `type` from `allowed_types` and only the DTO's fields.
pub fn parse(value: &Value, allowed_types: &[String]) -> Result<Vec<Detail>, String> {
    let arr = value.as_array().ok_or("authorization_details must be a JSON array")?;
    if arr.is_empty() {
        return Err("authorization_details must not be empty".into());
    }
    if arr.len() > 20 {
        return Err("authorization_details has too many entries".into());
    }
    let mut out = Vec::with_capacity(arr.len());
    for (i, v) in arr.iter().enumerate() {
        let d: Detail = serde_json::from_value(v.clone()).map_err(|e| format!("authorization_details[{i}]: {e}"))?;
        if !allowed_types.contains(&d.kind) {
            return Err(format!("authorization_details[{i}]: unknown type `{}`", d.kind));
        }
        for (name, list) in [
            ("actions", &d.actions),
            ("data_types", &d.data_types),
            ("locations", &d.locations),
        ] {
            if list
                .as_ref()
                .is_some_and(|l| l.is_empty() || l.iter().any(|s| s.is_empty()))
            {
                return Err(format!(
                    "authorization_details[{i}]: {name} must list non-empty strings"
                ));
            }
        }
        out.push(d);
    }
    Ok(out)
}

fn subset(req: &Option<Vec<String>>, granted: &Option<Vec<String>>) -> bool {
    match (req, granted) {
        (None, _) => true,
        (Some(_), None) => true,
        (Some(r), Some(g)) => r.iter().all(|x| g.contains(x)),
    }
}

/// `requested` narrowed against `granted`: each requested entry must be within a granted entry
/// of the same type (its actions, locations and data types a subset, the same identifier and
/// constraints); a field left out takes the granted value. `None` when something is not covered.
pub fn narrow(granted: &[Detail], requested: &[Detail]) -> Option<Vec<Detail>> {
    requested
        .iter()
        .map(|r| {
            granted.iter().find_map(|g| {
                let ok = g.kind == r.kind
                    && subset(&r.actions, &g.actions)
                    && subset(&r.locations, &g.locations)
                    && subset(&r.data_types, &g.data_types)
                    && (r.identifier.is_none() || g.identifier.is_none() || r.identifier == g.identifier)
                    && (r.constraints.is_none() || r.constraints == g.constraints);
                ok.then(|| Detail {
                    kind: r.kind.clone(),
                    identifier: r.identifier.clone().or_else(|| g.identifier.clone()),
                    actions: r.actions.clone().or_else(|| g.actions.clone()),
                    data_types: r.data_types.clone().or_else(|| g.data_types.clone()),
                    locations: r.locations.clone().or_else(|| g.locations.clone()),
                    constraints: r.constraints.clone().or_else(|| g.constraints.clone()),
                })
            })
        })
        .collect()
}

/// A JSON value in words: objects as `key value` pairs, arrays as lists.
fn words(v: &Value) -> String {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{} {}", k.replace('_', " "), words(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Array(a) => a.iter().map(words).collect::<Vec<_>>().join(", "),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One line per entry for the consent page, in plain words.
pub fn describe(details: &[Detail]) -> Vec<String> {
    details
        .iter()
        .map(|d| {
            let mut s = d.kind.replace('_', " ");
            if let Some(a) = &d.actions {
                s.push_str(&format!(": {}", a.join(", ").replace('_', " ")));
            }
            if let Some(t) = &d.data_types {
                s.push_str(&format!(" of {}", t.join(", ").replace('_', " ")));
            }
            if let Some(i) = &d.identifier {
                s.push_str(&format!(" for {i}"));
            }
            if let Some(l) = &d.locations {
                s.push_str(&format!(" at {}", l.join(", ")));
            }
            if let Some(c) = &d.constraints {
                s.push_str(&format!(
                    ", limited to {}",
                    words(&serde_json::Value::Object(c.clone()))
                ));
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn types() -> Vec<String> {
        vec!["account_information".into(), "payment_initiation".into()]
    }

    fn granted() -> Vec<Detail> {
        parse(
            &json!([{"type": "account_information", "actions": ["list_accounts", "read_balances"],
                     "locations": ["https://example.com/accounts"], "data_types": ["balances", "account_details"],
                     "identifier": "account-12345"}]),
            &types(),
        )
        .unwrap()
    }

    #[test]
    fn validation() {
        assert!(parse(&json!([{"type": "unknown"}]), &types()).is_err());
        assert!(parse(&json!({"type": "account_information"}), &types()).is_err());
        assert!(parse(&json!([]), &types()).is_err());
        assert!(parse(&json!([{"type": "account_information", "extra": 1}]), &types()).is_err());
        assert!(parse(&json!([{"type": "account_information", "actions": []}]), &types()).is_err());
        assert!(parse(&json!([{"type": "account_information", "actions": "x"}]), &types()).is_err());
    }

    #[test]
    fn narrowing_allowed_fills_left_out_fields() {
        let req = parse(
            &json!([{"type": "account_information", "actions": ["read_balances"]}]),
            &types(),
        )
        .unwrap();
        let n = narrow(&granted(), &req).unwrap();
        assert_eq!(n[0].actions.as_deref(), Some(&["read_balances".to_string()][..]));
        assert_eq!(n[0].locations, granted()[0].locations);
        assert_eq!(n[0].identifier.as_deref(), Some("account-12345"));
    }

    #[test]
    fn narrowing_refused() {
        for req in [
            json!([{"type": "account_information", "actions": ["transfer"]}]),
            json!([{"type": "payment_initiation"}]),
            json!([{"type": "account_information", "locations": ["https://evil.example"]}]),
            json!([{"type": "account_information", "identifier": "account-999"}]),
            json!([{"type": "account_information", "data_types": ["transactions"]}]),
        ] {
            let r = parse(&req, &types()).unwrap();
            assert!(narrow(&granted(), &r).is_none(), "{req}");
        }
    }

    #[test]
    fn constraints_are_shown_too() {
        let d = parse(
            &json!([{"type": "payment_initiation", "actions": ["initiate"],
                     "constraints": {"instructedAmount": {"currency": "EUR", "amount": "123.50"}}}]),
            &types(),
        )
        .unwrap();
        assert_eq!(
            describe(&d)[0],
            "payment initiation: initiate, limited to instructedAmount amount 123.50, currency EUR"
        );
    }

    #[test]
    fn plain_words() {
        assert_eq!(
            describe(&granted())[0],
            "account information: list accounts, read balances of balances, account details for account-12345 at https://example.com/accounts"
        );
    }
}
