//! Builds: what the builder recorded of each push.

use super::*;

impl Db {
    /// Records a finished build.
    pub async fn create_build(&self, app: &AppRow, build: &BuildCreate) -> Result<Build, DbError> {
        let created_at = now();
        let row = sqlx::query(
            "INSERT INTO builds (app_id, kind, status, image, git_sha, procfile, created_by, created_at, duration_ms, log,
                                 message)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(app.id)
        .bind(enum_text(&build.kind))
        .bind(enum_text(&build.status))
        .bind(&build.image)
        .bind(&build.git_sha)
        .bind(procfile_json(&build.procfile)?)
        .bind(build.username.as_str())
        .bind(&created_at)
        .bind(build.duration_ms as i64)
        .bind(&build.log)
        .bind(&build.message)
        .fetch_one(&self.pool)
        .await?;
        Ok(Build {
            id: row.get(0),
            app: app.name.clone(),
            kind: build.kind,
            status: build.status,
            image: build.image.clone(),
            git_sha: build.git_sha.clone(),
            procfile: build.procfile.clone(),
            created_by: build.username.clone(),
            created_at,
            duration_ms: build.duration_ms,
            log: None,
            message: build.message.clone(),
        })
    }

    fn build_row(app: &AppName, row: AnyRow, with_log: bool) -> Result<Build, DbError> {
        let procfile: String = row.get("procfile");
        Ok(Build {
            id: row.get("id"),
            app: app.clone(),
            kind: enum_parse(row.get("kind"))?,
            status: enum_parse(row.get("status"))?,
            image: row.get("image"),
            git_sha: row.get("git_sha"),
            procfile: procfile_parse(&procfile)?,
            created_by: parse(row.get("created_by"))?,
            created_at: row.get("created_at"),
            duration_ms: row.get::<i64, _>("duration_ms") as u64,
            log: with_log.then(|| row.get("log")),
            message: row.get("message"),
        })
    }

    /// An app's builds, newest first, without their logs: every one, or the newest `limit`.
    pub async fn builds(&self, app: &AppRow, limit: Option<u32>) -> Result<Vec<Build>, DbError> {
        sqlx::query(
            "SELECT id, kind, status, image, git_sha, procfile, created_by, created_at, duration_ms, message
             FROM builds WHERE app_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(app.id)
        .bind(limit.map_or(i64::MAX, i64::from))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row| Self::build_row(&app.name, row, false))
        .collect()
    }

    /// One build of an app, with its log.
    pub async fn build(&self, app: &AppRow, id: i64) -> Result<Option<Build>, DbError> {
        sqlx::query("SELECT * FROM builds WHERE app_id = $1 AND id = $2")
            .bind(app.id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| Self::build_row(&app.name, row, true))
            .transpose()
    }
}
