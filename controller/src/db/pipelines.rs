//! Pipelines and the stages of their apps.

use skiff_api::ReviewAppSettings;

use super::*;

/// A pipeline as stored.
#[derive(Debug, Clone)]
pub struct PipelineRow {
    pub id: i64,
    pub name: PipelineName,
    pub owner_id: i64,
    pub owner: Username,
    pub created_at: String,
    pub review: ReviewAppSettings,
}

/// A review app as stored.
#[derive(Debug, Clone)]
pub struct ReviewAppRow {
    pub app_id: i64,
    pub parent_id: i64,
    pub pipeline_id: i64,
    pub branch: String,
    pub pushed_at: String,
}

/// What [`Db::pipeline_row`] reads, from [`PIPELINE_TABLES`].
const PIPELINE_FIELDS: &str =
    "p.id, p.name, p.owner_id, u.username, p.created_at, p.review_apps, p.review_days, p.review_config";
const PIPELINE_TABLES: &str = "pipelines p JOIN users u ON u.id = p.owner_id";

const REVIEW_APP_COLUMNS: &str = "SELECT app_id, parent_id, pipeline_id, branch, pushed_at FROM review_apps";

impl Db {
    fn pipeline_row(row: AnyRow) -> Result<PipelineRow, DbError> {
        Ok(PipelineRow {
            id: row.get(0),
            name: parse(row.get(1))?,
            owner_id: row.get(2),
            owner: parse(row.get(3))?,
            created_at: row.get(4),
            review: ReviewAppSettings {
                enabled: row.get::<i64, _>(5) != 0,
                days: u32::try_from(row.get::<i64, _>(6)).unwrap_or(u32::MAX),
                config: config_parse(&row.get::<String, _>(7))?,
            },
        })
    }

    fn review_app_row(row: AnyRow) -> ReviewAppRow {
        ReviewAppRow {
            app_id: row.get(0),
            parent_id: row.get(1),
            pipeline_id: row.get(2),
            branch: row.get(3),
            pushed_at: row.get(4),
        }
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
            review: ReviewAppSettings::default(),
        }))
    }

    /// A pipeline by name.
    pub async fn pipeline(&self, name: &PipelineName) -> Result<Option<PipelineRow>, DbError> {
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {PIPELINE_FIELDS} FROM {PIPELINE_TABLES} WHERE p.name = $1")))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(Self::pipeline_row)
            .transpose()
    }

    /// Every pipeline, by name.
    pub async fn pipelines(&self) -> Result<Vec<PipelineRow>, DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PIPELINE_FIELDS} FROM {PIPELINE_TABLES} ORDER BY p.name"
        )))
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
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PIPELINE_FIELDS}, pa.stage FROM {PIPELINE_TABLES}
             JOIN pipeline_apps pa ON pa.pipeline_id = p.id WHERE pa.app_id = $1"
        )))
        .bind(app_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stage = enum_parse(row.get(8))?;
        Ok(Some((Self::pipeline_row(row)?, stage)))
    }

    /// Sets a pipeline's review apps on or off, and how they are made.
    pub async fn set_review_apps(&self, pipeline_id: i64, review: &ReviewAppSettings) -> Result<(), DbError> {
        sqlx::query("UPDATE pipelines SET review_apps = $1, review_days = $2, review_config = $3 WHERE id = $4")
            .bind(i64::from(review.enabled))
            .bind(i64::from(review.days))
            .bind(config_json(&review.config)?)
            .bind(pipeline_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Review apps: a pipeline's, or every one.
    pub async fn review_apps(&self, pipeline_id: Option<i64>) -> Result<Vec<ReviewAppRow>, DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{REVIEW_APP_COLUMNS} WHERE $1 IS NULL OR pipeline_id = $1 ORDER BY branch"
        )))
        .bind(pipeline_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Self::review_app_row).collect())
    }

    /// The review app of `branch` of the app `parent_id`.
    pub async fn review_app(&self, parent_id: i64, branch: &str) -> Result<Option<ReviewAppRow>, DbError> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("{REVIEW_APP_COLUMNS} WHERE parent_id = $1 AND branch = $2")))
                .bind(parent_id)
                .bind(branch)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(Self::review_app_row))
    }

    /// Records a new review app, pushed now.
    pub async fn add_review_app(
        &self,
        app_id: i64,
        parent_id: i64,
        pipeline_id: i64,
        branch: &str,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO review_apps (app_id, parent_id, pipeline_id, branch, pushed_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(app_id)
        .bind(parent_id)
        .bind(pipeline_id)
        .bind(branch)
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Notes a push to a review app's branch.
    pub async fn review_app_pushed(&self, app_id: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE review_apps SET pushed_at = $1 WHERE app_id = $2")
            .bind(now())
            .bind(app_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Claims the one run of a review app's postdeploy script; `false` when it ran already
    /// (or the app is no review app).
    pub async fn claim_postdeploy(&self, app_id: i64) -> Result<bool, DbError> {
        self.changed(
            sqlx::query("UPDATE review_apps SET postdeploy_ran = 1 WHERE app_id = $1 AND postdeploy_ran = 0")
                .bind(app_id),
        )
        .await
    }
}
