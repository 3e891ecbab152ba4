//! Request parameters of the protocol endpoints, from a form body, a JSON object or a query
//! string. Repeated parameters are refused (RFC 6749 §3.1), empty values count as absent, and
//! JSON values other than strings are kept for the few fields that are structured
//! (`authorization_details`).

use crate::domain::error::OAuthError;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

#[derive(Clone, Debug, Default)]
pub struct Params {
    map: HashMap<String, Value>,
}

fn repeated(k: &str) -> OAuthError {
    OAuthError::invalid_request(format!("parameter `{k}` is repeated"))
}

impl Params {
    /// `application/x-www-form-urlencoded` (or a query string).
    pub fn from_form(bytes: &[u8]) -> Result<Params, OAuthError> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            if map.insert(k.to_string(), Value::String(v.into_owned())).is_some() {
                return Err(repeated(&k));
            }
        }
        Ok(Params { map })
    }

    /// A JSON object; a key given twice is refused like a repeated form parameter.
    pub fn from_json(bytes: &[u8]) -> Result<Params, OAuthError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let obj = de.deserialize_map(UniqueMap).map_err(|e| {
            let msg = e.to_string();
            if let Some(k) = msg.strip_prefix("repeated:") {
                let k = k.split(" at line").next().unwrap_or(k);
                repeated(k)
            } else {
                OAuthError::invalid_request("request body is not a JSON object")
            }
        })?;
        de.end()
            .map_err(|_| OAuthError::invalid_request("request body is not a JSON object"))?;
        Ok(Params { map: obj })
    }

    /// A string parameter; `None` when absent or empty. A non-string JSON value is refused.
    pub fn get(&self, k: &str) -> Result<Option<&str>, OAuthError> {
        match self.map.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(OAuthError::invalid_request(format!("parameter `{k}` must be a string"))),
        }
    }

    pub fn required(&self, k: &str) -> Result<&str, OAuthError> {
        self.get(k)?
            .ok_or_else(|| OAuthError::invalid_request(format!("missing required parameter `{k}`")))
    }

    /// A structured value (JSON), or a string holding JSON (form and query encodings).
    pub fn json(&self, k: &str) -> Result<Option<Value>, OAuthError> {
        match self.map.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => serde_json::from_str(s)
                .map(Some)
                .map_err(|_| OAuthError::invalid_request(format!("parameter `{k}` is not valid JSON"))),
            Some(v) => Ok(Some(v.clone())),
        }
    }

    pub fn contains(&self, k: &str) -> bool {
        self.map.contains_key(k)
    }

    /// A copy without `keys`.
    pub fn without(&self, keys: &[&str]) -> Params {
        let map = self
            .map
            .iter()
            .filter(|(k, _)| !keys.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Params { map }
    }

    /// A copy with `k` set to `v`.
    pub fn with(mut self, k: &str, v: &str) -> Params {
        self.map.insert(k.to_string(), Value::String(v.to_string()));
        self
    }

    /// The string parameters form-encoded, in a stable order.
    pub fn encode(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = self.strings().collect();
        pairs.sort();
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            ser.append_pair(k, v);
        }
        ser.finish()
    }

    /// The string parameters, for re-encoding (consent form hidden fields).
    pub fn strings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s)))
    }
}

struct UniqueMap;

impl<'de> Visitor<'de> for UniqueMap {
    type Value = HashMap<String, Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = HashMap::new();
        while let Some((k, v)) = access.next_entry::<String, Value>()? {
            if map.contains_key(&k) {
                return Err(serde::de::Error::custom(format!("repeated:{k}")));
            }
            map.insert(k, v);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_refuses_repeats_and_treats_empty_as_absent() {
        assert!(Params::from_form(b"a=1&a=2").is_err());
        let p = Params::from_form(b"a=&b=x%20y").unwrap();
        assert_eq!(p.get("a").unwrap(), None);
        assert_eq!(p.get("b").unwrap(), Some("x y"));
        assert_eq!(p.required("a").unwrap_err().code.as_str(), "invalid_request");
    }

    #[test]
    fn json_refuses_repeats_non_objects_and_non_strings() {
        let e = Params::from_json(br#"{"a":"1","a":"2"}"#).unwrap_err();
        assert_eq!(e.description.as_deref(), Some("parameter `a` is repeated"));
        assert!(Params::from_json(b"[1]").is_err());
        assert!(Params::from_json(b"{").is_err());
        assert!(Params::from_json(br#"{"a":"1"} x"#).is_err());
        let p = Params::from_json(br#"{"a":1,"d":[{"type":"x"}]}"#).unwrap();
        assert!(p.get("a").is_err());
        assert!(p.json("d").unwrap().unwrap().is_array());
    }
}
