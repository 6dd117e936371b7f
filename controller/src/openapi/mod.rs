//! The API's OpenAPI 3.0 document, served at `/v2/openapi.json`, built from one table of
//! operations with the JSON Schemas of their request and response bodies (derived from
//! the wire types the handlers use). A whole-platform test calls every operation it lists
//! and checks each answer against the document, so the document cannot name a route the
//! controller does not serve, nor describe a body other than the one it sends.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Value, json};

mod operations;

pub use operations::OPERATIONS;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Anyone,
    /// A user's bearer token.
    User,
    /// The platform's service token (builder, registry, router).
    Service,
}

/// A JSON Schema of a wire type, registered with the document's generator.
pub type SchemaOf = fn(&mut SchemaGenerator) -> Schema;

fn of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = generator.subschema_for::<T>();
    // The OpenAPI 3.0 dialect (`nullable`, no `null` type), as the components get.
    for transform in generator.transforms_mut() {
        transform.transform(&mut schema);
    }
    schema
}

/// Maps keyed by a validated name come out as `patternProperties`, which OpenAPI 3.0 does
/// not have: they become `additionalProperties`, with the key rule in `x-key-pattern`.
fn without_pattern_properties(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(Value::Object(patterns)) = object.remove("patternProperties")
                && let Some((pattern, schema)) = patterns.into_iter().next()
            {
                object.insert("additionalProperties".into(), schema);
                object.insert("x-key-pattern".into(), pattern.into());
            }
            object.values_mut().for_each(without_pattern_properties);
        }
        Value::Array(items) => items.iter_mut().for_each(without_pattern_properties),
        _ => {}
    }
}

/// What an operation answers when it succeeds.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// A JSON body with this status.
    Json(u16, SchemaOf),
    /// Newline-delimited JSON values, streamed (`application/x-ndjson`).
    Lines(SchemaOf),
    /// No body.
    Empty(u16),
    /// Plain text.
    Text,
}

/// One operation of the API.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub caller: Caller,
    /// The JSON request body, if it takes one.
    pub request: Option<SchemaOf>,
    pub answer: Answer,
}

const fn op(
    method: &'static str,
    path: &'static str,
    caller: Caller,
    summary: &'static str,
    request: Option<SchemaOf>,
    answer: Answer,
) -> Operation {
    Operation { method, path, summary, caller, request, answer }
}

/// The document.
pub fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut paths = serde_json::Map::new();
    for operation in OPERATIONS {
        let parameters: Vec<Value> = operation
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let security = match operation.caller {
            Caller::Anyone => json!([]),
            Caller::User | Caller::Service => json!([{"bearer": []}]),
        };
        let (status, success) = match operation.answer {
            Answer::Json(status, schema) => (
                status,
                json!({"description": "Success", "content": {"application/json": {"schema": schema(&mut generator)}}}),
            ),
            Answer::Lines(schema) => (
                200,
                json!({
                    "description": "Success: one JSON value per line, as they come",
                    "content": {"application/x-ndjson": {"schema": schema(&mut generator)}},
                }),
            ),
            Answer::Empty(status) => (status, json!({"description": "Success, no body"})),
            Answer::Text => {
                (200, json!({"description": "Success", "content": {"text/plain": {"schema": {"type": "string"}}}}))
            }
        };
        let mut entry = json!({
            "summary": operation.summary,
            "parameters": parameters,
            "security": security,
            "responses": {
                status.to_string(): success,
                "default": {
                    "description": "An error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
        });
        if let Some(request) = operation.request {
            entry["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": request(&mut generator)}}});
        }
        if operation.caller == Caller::Service {
            entry["description"] = "For Skiff's own components: the bearer is the service token.".into();
        }
        let path = paths.entry(operation.path).or_insert_with(|| json!({}));
        path[operation.method] = entry;
    }
    let mut schemas: serde_json::Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }),
    );
    let mut document = json!({
        "openapi": "3.0.3",
        "info": {"title": "Skiff controller API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
    });
    without_pattern_properties(&mut document);
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_in_the_document_once() {
        let document = document();
        let count: usize = document["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(count, OPERATIONS.len(), "no method is listed twice for a path");
        let app = &document["paths"]["/v2/apps/{app}/builds/{id}"]["get"];
        assert_eq!(app["parameters"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn the_document_is_openapi_3_0_and_every_reference_resolves() {
        let document = document();
        let text = document.to_string();
        assert!(!text.contains("patternProperties") && !text.contains(r#""null""#), "3.1-only keywords");
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for reference in text.split(r#""$ref":""#).skip(1) {
            let name = reference.split('"').next().unwrap().trim_start_matches("#/components/schemas/");
            assert!(schemas.contains_key(name), "{name} is referenced but not defined");
        }
        let patch = &document["paths"]["/v2/apps/{app}/config"]["patch"];
        let body = &patch["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["additionalProperties"], serde_json::json!({"type": "string", "nullable": true}));
        assert_eq!(schemas["AppName"]["pattern"], "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$");
    }
}
