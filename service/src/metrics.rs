//! Prometheus' text format (version 0.0.4), and the one metric every HTTP service has:
//! answers by status class.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// The content type of `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metrics page being written.
#[derive(Debug, Default)]
pub struct Text(String);

impl Text {
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter: `values` are (labels such as `{drain="3"}` or empty, value).
    pub fn counter(&mut self, name: &str, help: &str, values: &[(String, u64)]) -> &mut Self {
        self.family(name, help, "counter", values)
    }

    /// A gauge.
    pub fn gauge(&mut self, name: &str, help: &str, values: &[(String, u64)]) -> &mut Self {
        self.family(name, help, "gauge", values)
    }

    fn family(&mut self, name: &str, help: &str, kind: &str, values: &[(String, u64)]) -> &mut Self {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in values {
            let _ = writeln!(self.0, "{name}{labels} {value}");
        }
        self
    }

    /// The page.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

/// Answers a service gave, by status class (1xx … 5xx).
#[derive(Debug, Default)]
pub struct Answers {
    by_class: [AtomicU64; 5],
}

impl Answers {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts one answer.
    pub fn count(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Writes `<prefix>_http_responses_total{class="2xx"}` and the others.
    pub fn render(&self, text: &mut Text, prefix: &str) {
        let values: Vec<(String, u64)> = self
            .by_class
            .iter()
            .enumerate()
            .map(|(class, count)| (format!("{{class=\"{}xx\"}}", class + 1), count.load(Ordering::Relaxed)))
            .collect();
        text.counter(&format!("{prefix}_http_responses_total"), "Answers given, by status class.", &values);
    }

    /// Middleware (`axum::middleware::from_fn_with_state`) that counts every answer.
    pub async fn layer(answers: axum::extract::State<Arc<Self>>, request: Request, next: Next) -> Response {
        let response = next.run(request).await;
        answers.count(response.status().as_u16());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_in_the_text_format() {
        let answers = Answers::new();
        for status in [200, 201, 404, 503, 99, 700] {
            answers.count(status);
        }
        let mut text = Text::new();
        text.gauge("skiff_test_apps", "Apps.", &[(String::new(), 3)]);
        answers.render(&mut text, "skiff_test");
        assert_eq!(
            text.finish(),
            "# HELP skiff_test_apps Apps.\n# TYPE skiff_test_apps gauge\nskiff_test_apps 3\n\
             # HELP skiff_test_http_responses_total Answers given, by status class.\n\
             # TYPE skiff_test_http_responses_total counter\n\
             skiff_test_http_responses_total{class=\"1xx\"} 1\n\
             skiff_test_http_responses_total{class=\"2xx\"} 2\n\
             skiff_test_http_responses_total{class=\"3xx\"} 0\n\
             skiff_test_http_responses_total{class=\"4xx\"} 1\n\
             skiff_test_http_responses_total{class=\"5xx\"} 2\n"
        );
    }
}
