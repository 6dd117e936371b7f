//! The API's OpenAPI 3.0 document, served at `/v2/openapi.json`, built from one table of
//! operations with the JSON Schemas of their request and response bodies (derived from
//! the wire types the handlers use). A whole-platform test calls every operation it lists
//! and checks each answer against the document, so the document cannot name a route the
//! controller does not serve, nor describe a body other than the one it sends.

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Value, json};
use skiff_api::ProcessType;
use skiff_api::wire as w;

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

use Answer::{Empty, Json, Lines, Text};
use Caller::{Anyone, Service, User};

/// Every operation the controller serves.
pub const OPERATIONS: &[Operation] = &[
    op("get", "/healthz", Anyone, "Liveness", None, Text),
    op("get", "/readyz", Anyone, "Readiness: every dependency answers (503 with the one that does not)", None, Text),
    op("get", "/metrics", Anyone, "Prometheus metrics", None, Text),
    op("get", "/v2/openapi.json", Anyone, "This document", None, Json(200, of::<Value>)),
    op(
        "post",
        "/v2/auth/register",
        Anyone,
        "Create an account (the first is admin; then per the registration mode)",
        Some(of::<w::Credentials>),
        Json(201, of::<w::Session>),
    ),
    op(
        "post",
        "/v2/auth/login",
        Anyone,
        "Log in; returns a token",
        Some(of::<w::Credentials>),
        Json(200, of::<w::Session>),
    ),
    op("get", "/v2/auth/whoami", User, "Who the token belongs to", None, Json(200, of::<w::User>)),
    op("delete", "/v2/auth/token", User, "Revoke the token", None, Empty(204)),
    op("get", "/v2/keys", User, "List SSH keys", None, Json(200, of::<Vec<w::Key>>)),
    op("post", "/v2/keys", User, "Add an SSH key", Some(of::<w::KeyCreate>), Json(201, of::<w::Key>)),
    op("delete", "/v2/keys/{id}", User, "Remove an SSH key", None, Empty(204)),
    op("get", "/v2/apps", User, "List apps", None, Json(200, of::<Vec<w::App>>)),
    op("post", "/v2/apps", User, "Create an app", Some(of::<w::AppCreate>), Json(201, of::<w::App>)),
    op("get", "/v2/apps/{app}", User, "Show an app", None, Json(200, of::<w::App>)),
    op("delete", "/v2/apps/{app}", User, "Destroy an app", None, Empty(204)),
    op(
        "get",
        "/v2/apps/{app}/releases",
        User,
        "List releases, newest first (`?limit=N`: the newest N)",
        None,
        Json(200, of::<Vec<w::Release>>),
    ),
    op(
        "get",
        "/v2/apps/{app}/releases/{version}",
        User,
        "Show one release (`3` or `v3`)",
        None,
        Json(200, of::<w::Release>),
    ),
    op(
        "post",
        "/v2/apps/{app}/releases/rollback",
        User,
        "Roll back to an earlier release",
        Some(of::<w::Rollback>),
        Json(201, of::<w::Release>),
    ),
    op("get", "/v2/apps/{app}/config", User, "Show the config", None, Json(200, of::<BTreeMap<String, String>>)),
    op(
        "patch",
        "/v2/apps/{app}/config",
        User,
        "Set and unset config keys (a new release)",
        Some(of::<w::ConfigChange>),
        Json(200, of::<w::ConfigChanged>),
    ),
    op(
        "get",
        "/v2/apps/{app}/formation",
        User,
        "Process types and their scale",
        None,
        Json(200, of::<Vec<w::Formation>>),
    ),
    op(
        "post",
        "/v2/apps/{app}/scale",
        User,
        "Scale process types",
        Some(of::<w::Scale>),
        Json(200, of::<Vec<w::Formation>>),
    ),
    op("get", "/v2/apps/{app}/ps", User, "List containers", None, Json(200, of::<Vec<w::Process>>)),
    op(
        "post",
        "/v2/apps/{app}/ps/restart",
        User,
        "Replace containers without downtime",
        Some(of::<w::Restart>),
        Empty(202),
    ),
    op(
        "post",
        "/v2/apps/{app}/run",
        User,
        "Run a one-off command: its output, then its exit status",
        Some(of::<w::RunRequest>),
        Lines(of::<w::RunOutput>),
    ),
    op("get", "/v2/apps/{app}/perms", User, "List collaborators", None, Json(200, of::<Vec<skiff_api::Username>>)),
    op("post", "/v2/apps/{app}/perms", User, "Add a collaborator", Some(of::<w::UserRef>), Empty(201)),
    op("delete", "/v2/apps/{app}/perms/{username}", User, "Remove a collaborator", None, Empty(204)),
    op(
        "post",
        "/v2/apps/{app}/transfer",
        User,
        "Give the app to another user",
        Some(of::<w::UserRef>),
        Json(200, of::<w::App>),
    ),
    op("get", "/v2/apps/{app}/domains", User, "List custom domains", None, Json(200, of::<Vec<w::Domain>>)),
    op("post", "/v2/apps/{app}/domains", User, "Add a custom domain", Some(of::<w::DomainCreate>), Empty(201)),
    op("delete", "/v2/apps/{app}/domains/{domain}", User, "Remove a custom domain", None, Empty(204)),
    op(
        "get",
        "/v2/apps/{app}/drains",
        User,
        "List log drains with their deliveries",
        None,
        Json(200, of::<Vec<skiff_api::Drain>>),
    ),
    op(
        "post",
        "/v2/apps/{app}/drains",
        User,
        "Add a log drain (syslog://, syslog+tls://, https://)",
        Some(of::<skiff_api::DrainCreate>),
        Json(201, of::<skiff_api::Drain>),
    ),
    op("delete", "/v2/apps/{app}/drains/{id}", User, "Remove a log drain", None, Empty(204)),
    op(
        "get",
        "/v2/drains",
        User,
        "List platform-wide log drains (admins)",
        None,
        Json(200, of::<Vec<skiff_api::Drain>>),
    ),
    op(
        "post",
        "/v2/drains",
        User,
        "Add a platform-wide log drain (admins)",
        Some(of::<skiff_api::DrainCreate>),
        Json(201, of::<skiff_api::Drain>),
    ),
    op("delete", "/v2/drains/{id}", User, "Remove a platform-wide log drain (admins)", None, Empty(204)),
    op("get", "/v2/apps/{app}/certs", User, "List TLS certificates", None, Json(200, of::<Vec<w::Certificate>>)),
    op(
        "post",
        "/v2/apps/{app}/certs",
        User,
        "Add a TLS certificate (PEM chain and key)",
        Some(of::<w::CertificateCreate>),
        Json(201, of::<w::Certificate>),
    ),
    op("delete", "/v2/apps/{app}/certs/{name}", User, "Remove a TLS certificate", None, Empty(204)),
    op(
        "post",
        "/v2/apps/{app}/certs/{name}/domains",
        User,
        "Serve a certificate for one of the app's domains",
        Some(of::<w::DomainCreate>),
        Empty(201),
    ),
    op(
        "delete",
        "/v2/apps/{app}/certs/{name}/domains/{domain}",
        User,
        "Stop serving a certificate for a domain",
        None,
        Empty(204),
    ),
    op(
        "get",
        "/v2/apps/{app}/access",
        User,
        "Show what the router lets through (body limit, allowed and denied addresses)",
        None,
        Json(200, of::<w::AccessPolicy>),
    ),
    op(
        "put",
        "/v2/apps/{app}/access",
        User,
        "Set what the router lets through",
        Some(of::<w::AccessPolicy>),
        Json(200, of::<w::AccessPolicy>),
    ),
    op(
        "get",
        "/v2/apps/{app}/tls",
        User,
        "Show the HTTPS policy (force HTTPS, HSTS)",
        None,
        Json(200, of::<w::TlsSettings>),
    ),
    op(
        "put",
        "/v2/apps/{app}/tls",
        User,
        "Set the HTTPS policy",
        Some(of::<w::TlsSettings>),
        Json(200, of::<w::TlsSettings>),
    ),
    op(
        "post",
        "/v2/apps/{app}/maintenance",
        User,
        "Turn maintenance mode on or off",
        Some(of::<w::Maintenance>),
        Json(200, of::<w::App>),
    ),
    op("get", "/v2/apps/{app}/limits", User, "Show limits", None, Json(200, of::<BTreeMap<ProcessType, w::Limits>>)),
    op(
        "patch",
        "/v2/apps/{app}/limits",
        User,
        "Change limits (null removes a process type's)",
        Some(of::<w::SettingsChange<w::Limits>>),
        Json(200, of::<BTreeMap<ProcessType, w::Limits>>),
    ),
    op(
        "get",
        "/v2/apps/{app}/healthchecks",
        User,
        "Show health checks",
        None,
        Json(200, of::<BTreeMap<ProcessType, w::Healthcheck>>),
    ),
    op(
        "patch",
        "/v2/apps/{app}/healthchecks",
        User,
        "Change health checks (null removes a process type's)",
        Some(of::<w::SettingsChange<w::Healthcheck>>),
        Json(200, of::<BTreeMap<ProcessType, w::Healthcheck>>),
    ),
    op("get", "/v2/apps/{app}/builds", User, "List builds", None, Json(200, of::<Vec<w::Build>>)),
    op("get", "/v2/apps/{app}/builds/{id}", User, "Show a build with its log", None, Json(200, of::<w::Build>)),
    op(
        "post",
        "/v2/apps/{app}/deploy",
        User,
        "Release an existing image",
        Some(of::<w::DeployImage>),
        Json(201, of::<w::BuildRecorded>),
    ),
    op(
        "get",
        "/v2/apps/{app}/logs",
        User,
        "Recent log lines (a JSON array), or with follow=true a stream of JSON lines",
        None,
        Json(200, of::<Vec<w::LogLine>>),
    ),
    op(
        "get",
        "/v2/apps/{app}/events",
        User,
        "The app's audit trail: who did what and when",
        None,
        Json(200, of::<Vec<w::Event>>),
    ),
    op(
        "get",
        "/v2/events",
        User,
        "Every event, the platform's and every app's (admins)",
        None,
        Json(200, of::<Vec<w::Event>>),
    ),
    op("get", "/v2/stacks", User, "List stacks", None, Json(200, of::<Vec<w::Stack>>)),
    op(
        "post",
        "/v2/stacks/{name}",
        User,
        "Import a root filesystem tarball (the body, application/x-tar or gzip) as a stack (admins)",
        None,
        Json(201, of::<w::Stack>),
    ),
    op(
        "post",
        "/v2/admin/gc",
        User,
        "Apply image retention and collect the registry's garbage (admins)",
        None,
        Json(200, of::<Value>),
    ),
    op(
        "get",
        "/v2/routes",
        Service,
        "The route table once its version differs from `after` (long poll)",
        None,
        Json(200, of::<w::RouteTable>),
    ),
    op(
        "get",
        "/v2/hooks/drains",
        Service,
        "Every log drain, for the logger",
        None,
        Json(200, of::<Vec<skiff_api::Drain>>),
    ),
    op("get", "/v2/hooks/keys/{fingerprint}", Service, "Who owns an SSH key", None, Json(200, of::<w::KeyOwner>)),
    op(
        "get",
        "/v2/hooks/apps/{app}/access/{username}",
        Service,
        "May a user push to an app",
        None,
        Json(200, of::<w::PushGrant>),
    ),
    op(
        "post",
        "/v2/hooks/builds",
        Service,
        "Record a build (a succeeded one becomes a release)",
        Some(of::<w::BuildCreate>),
        Json(201, of::<w::BuildRecorded>),
    ),
    op(
        "get",
        "/v2/hooks/apps/{app}/releases/{version}",
        Service,
        "One release, to follow its rollout",
        None,
        Json(200, of::<w::Release>),
    ),
    op(
        "post",
        "/v2/hooks/registry/access",
        Service,
        "What registry credentials may do",
        Some(of::<w::RegistryAccess>),
        Json(200, of::<w::RegistryGrant>),
    ),
    op(
        "post",
        "/v2/hooks/images/use",
        Service,
        "May a build's pusher build from an image (403 with the reason)",
        Some(of::<w::ImageUse>),
        Empty(204),
    ),
];

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
