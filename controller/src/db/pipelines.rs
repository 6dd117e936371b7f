//! Pipelines and the stages of their apps.

use super::*;

/// A pipeline as stored.
#[derive(Debug, Clone)]
pub struct PipelineRow {
    pub id: i64,
    pub name: PipelineName,
    pub owner_id: i64,
    pub owner: Username,
    pub created_at: String,
}

const PIPELINE_COLUMNS: &str =
    "SELECT p.id, p.name, p.owner_id, u.username, p.created_at FROM pipelines p JOIN users u ON u.id = p.owner_id";

impl Db {
    fn pipeline_row(row: AnyRow) -> Result<PipelineRow, DbError> {
        Ok(PipelineRow {
            id: row.get(0),
            name: parse(row.get(1))?,
            owner_id: row.get(2),
            owner: parse(row.get(3))?,
            created_at: row.get(4),
        })
    }

    /// Creates a pipeline; `None` when the name is taken.
    pub async fn create_pipeline(&self, name: &PipelineName, owner: &UserRow) -> Result<Option<PipelineRow>, DbError> {
        let created_at = now();
        let row = sqlx::query(
            "INSERT INTO pipelines (name, owner_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name.as_str())
        .bind(owner.id)
        .bind(&created_at)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(|row| PipelineRow {
            id: row.get(0),
            name: name.clone(),
            owner_id: owner.id,
            owner: owner.username.clone(),
            created_at,
        }))
    }

    /// A pipeline by name.
    pub async fn pipeline(&self, name: &PipelineName) -> Result<Option<PipelineRow>, DbError> {
        sqlx::query(sqlx::AssertSqlSafe(format!("{PIPELINE_COLUMNS} WHERE p.name = $1")))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(Self::pipeline_row)
            .transpose()
    }

    /// Every pipeline, by name.
    pub async fn pipelines(&self) -> Result<Vec<PipelineRow>, DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{PIPELINE_COLUMNS} ORDER BY p.name")))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Self::pipeline_row).collect()
    }

    /// Deletes a pipeline; its apps stay, in no pipeline.
    pub async fn delete_pipeline(&self, id: i64) -> Result<(), DbError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM pipeline_apps WHERE pipeline_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM pipelines WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The apps of a pipeline: (app id, stage).
    pub async fn pipeline_apps(&self, pipeline_id: i64) -> Result<Vec<(i64, Stage)>, DbError> {
        let rows = sqlx::query("SELECT app_id, stage FROM pipeline_apps WHERE pipeline_id = $1")
            .bind(pipeline_id)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(|row| Ok((row.get(0), enum_parse(row.get(1))?))).collect()
    }

    /// Puts an app in a pipeline at `stage` (or moves it to `stage` there).
    pub async fn couple(&self, pipeline_id: i64, app_id: i64, stage: Stage) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO pipeline_apps (app_id, pipeline_id, stage) VALUES ($1, $2, $3)
             ON CONFLICT (app_id) DO UPDATE SET pipeline_id = excluded.pipeline_id, stage = excluded.stage",
        )
        .bind(app_id)
        .bind(pipeline_id)
        .bind(enum_text(&stage))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Takes an app out of its pipeline; `false` when it was in none.
    pub async fn uncouple(&self, app_id: i64) -> Result<bool, DbError> {
        self.changed(sqlx::query("DELETE FROM pipeline_apps WHERE app_id = $1").bind(app_id)).await
    }

    /// The pipeline an app is in, with its stage there.
    pub async fn coupling(&self, app_id: i64) -> Result<Option<(PipelineRow, Stage)>, DbError> {
        let row = sqlx::query(
            "SELECT p.id, p.name, p.owner_id, u.username, p.created_at, pa.stage
             FROM pipeline_apps pa JOIN pipelines p ON p.id = pa.pipeline_id JOIN users u ON u.id = p.owner_id
             WHERE pa.app_id = $1",
        )
        .bind(app_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stage = enum_parse(row.get(5))?;
        Ok(Some((Self::pipeline_row(row)?, stage)))
    }
}
