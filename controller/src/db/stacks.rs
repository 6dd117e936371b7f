//! Stacks: the base images apps build on.

use super::*;

impl Db {
    /// Records (or replaces) a stack's image.
    pub async fn put_stack(&self, name: &StackName, image: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO stacks (name, image, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET image = excluded.image, created_at = excluded.created_at",
        )
        .bind(name.as_str())
        .bind(image)
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Every stack: name and image.
    pub async fn stacks(&self) -> Result<Vec<(StackName, String)>, DbError> {
        sqlx::query("SELECT name, image FROM stacks ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|row| Ok((parse(row.get(0))?, row.get(1))))
            .collect()
    }
}
