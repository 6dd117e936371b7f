//! The cluster's nodes (admins): `GET /v2/nodes`, `POST /v2/nodes/{node}/drain` and
//! `/activate`, `GET /v2/nodes/join`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use skiff_api::{NodeJoin, NodeView};

use super::extract::CurrentUser;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/nodes", get(list))
        .route("/v2/nodes/join", get(join))
        .route("/v2/nodes/{node}/drain", post(drain))
        .route("/v2/nodes/{node}/activate", post(activate))
}

async fn list(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<NodeView>>, ApiError> {
    c.nodes().list(&user).await.map(Json)
}

async fn join(State(c): State<Arc<Controller>>, CurrentUser(user): CurrentUser) -> Result<Json<NodeJoin>, ApiError> {
    c.nodes().join(&user).await.map(Json)
}

async fn drain(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(node): Path<String>,
) -> Result<Json<NodeView>, ApiError> {
    c.nodes().drain(&user, &node).await.map(Json)
}

async fn activate(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(node): Path<String>,
) -> Result<Json<NodeView>, ApiError> {
    c.nodes().activate(&user, &node).await.map(Json)
}
