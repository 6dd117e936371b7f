//! Writing the dashboard's HTML: every value from users and apps goes through [`escape`]
//! (or [`Html::text`]), and the page frame is one function.

use std::fmt::Write as _;

/// `text` made safe for HTML text and attribute values (quoted with `"`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An RFC 3339 time as the dashboard shows it (`2026-12-06 16:47 UTC`), in a `<time>`.
pub fn time(rfc3339: &str) -> String {
    let shown = rfc3339.get(..16).map_or_else(|| rfc3339.to_owned(), |t| format!("{} UTC", t.replace('T', " ")));
    format!(r#"<time datetime="{}">{}</time>"#, escape(rfc3339), escape(&shown))
}

/// A page being written.
#[derive(Debug, Default)]
pub struct Html(String);

impl Html {
    /// Markup written by the dashboard itself (never a user's or an app's value).
    pub fn raw(&mut self, markup: &str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// A value, escaped.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.0.push_str(&escape(value));
        self
    }

    /// A table: headers, then rows of cells that are markup already (escape values first).
    pub fn table(&mut self, class: &str, headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> &mut Self {
        let _ = write!(self.0, r#"<table class="{class}"><thead><tr>"#);
        for header in headers {
            let _ = write!(self.0, "<th>{header}</th>");
        }
        self.0.push_str("</tr></thead><tbody>");
        let mut any = false;
        for row in rows {
            any = true;
            self.0.push_str("<tr>");
            for cell in row {
                let _ = write!(self.0, "<td>{cell}</td>");
            }
            self.0.push_str("</tr>");
        }
        if !any {
            let _ = write!(self.0, r#"<tr><td colspan="{}" class="none">none</td></tr>"#, headers.len());
        }
        self.0.push_str("</tbody></table>");
        self
    }

    /// A form that POSTs to `action` with the session's CSRF token, `hidden` fields, text
    /// inputs (name, placeholder; the first one required) and one button.
    pub fn form(
        &mut self,
        action: &str,
        csrf: &str,
        hidden: &[(&str, &str)],
        inputs: &[(&str, &str)],
        label: &str,
        class: &str,
    ) -> &mut Self {
        self.open_form(action, csrf, "inline");
        for (name, value) in hidden {
            let _ = write!(self.0, r#"<input type="hidden" name="{}" value="{}">"#, escape(name), escape(value));
        }
        self.inputs(inputs);
        let _ = write!(self.0, r#"<button class="{class}">{}</button></form>"#, escape(label));
        self
    }

    /// A form for longer values: text inputs, then text areas (name, placeholder; each
    /// required), one under the other, and a button.
    pub fn upload_form(
        &mut self,
        action: &str,
        csrf: &str,
        inputs: &[(&str, &str)],
        areas: &[(&str, &str)],
        label: &str,
    ) -> &mut Self {
        self.open_form(action, csrf, "upload");
        self.inputs(inputs);
        for (name, placeholder) in areas {
            let _ = write!(
                self.0,
                r#"<textarea name="{0}" placeholder="{1}" aria-label="{1}" rows="6" required></textarea>"#,
                escape(name),
                escape(placeholder)
            );
        }
        let _ = write!(self.0, "<button>{}</button></form>", escape(label));
        self
    }

    fn open_form(&mut self, action: &str, csrf: &str, class: &str) {
        let _ = write!(
            self.0,
            r#"<form method="post" action="{}" class="{class}"><input type="hidden" name="csrf" value="{}">"#,
            escape(action),
            escape(csrf)
        );
    }

    /// Text inputs (name, placeholder), the first one required.
    fn inputs(&mut self, inputs: &[(&str, &str)]) {
        for (index, (name, placeholder)) in inputs.iter().enumerate() {
            let required = if index == 0 { " required" } else { "" };
            let _ = write!(
                self.0,
                r#"<input name="{0}" placeholder="{1}" aria-label="{1}"{required}> "#,
                escape(name),
                escape(placeholder)
            );
        }
    }

    /// A form that POSTs to `action` with the session's CSRF token and one button.
    pub fn post_button(&mut self, action: &str, csrf: &str, label: &str, class: &str) -> &mut Self {
        self.open_form(action, csrf, "inline");
        let _ = write!(self.0, r#"<button class="{class}">{}</button></form>"#, escape(label));
        self
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Who is signed in, for the page frame.
pub struct Frame<'a> {
    pub username: &'a str,
    pub csrf: &'a str,
    /// Whether the platform's page is in the navigation.
    pub admin: bool,
}

/// A whole page: the frame (title, the stylesheet, navigation, sign-out) around `body`.
pub fn page(title: &str, frame: Option<&Frame<'_>>, body: &str) -> String {
    let mut html = Html::default();
    html.raw(r#"<!doctype html><html lang="en"><head><meta charset="utf-8">"#)
        .raw(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#)
        .raw("<title>")
        .text(title)
        .raw(r#" · Skiff</title><link rel="stylesheet" href="/dashboard/assets/skiff.css"></head><body><header>"#)
        .raw(r#"<a class="brand" href="/dashboard">Skiff</a>"#);
    if let Some(frame) = frame {
        html.raw(r#"<nav><a href="/dashboard">Apps</a>"#);
        if frame.admin {
            html.raw(r#" <a href="/dashboard/platform">Platform</a>"#);
        }
        html.raw(r#"</nav><span class="who">"#).text(frame.username).raw("</span>").post_button(
            "/dashboard/logout",
            frame.csrf,
            "Sign out",
            "quiet",
        );
    }
    html.raw("</header><main>").raw(body).raw("</main></body></html>");
    html.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_for_text_and_attributes() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        let mut html = Html::default();
        html.post_button("/a?b=\"c\"", "t<", "<b>", "x");
        let written = html.into_string();
        assert!(written.contains(r#"action="/a?b=&quot;c&quot;""#) && written.contains("&lt;b&gt;"), "{written}");
        assert_eq!(
            time("2026-12-06T16:47:21.5Z"),
            r#"<time datetime="2026-12-06T16:47:21.5Z">2026-12-06 16:47 UTC</time>"#
        );
    }
}
