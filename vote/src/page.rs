//! The vote page: plain HTML and CSS, a form per option, no JavaScript, so
//! it works in any browser and on any phone.

use common::html::escape;
use common::Choice;

/// A banner above the buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice<'a> {
    None,
    Error(&'a str),
}

/// Renders the page. `labels` are the configured option names (any UTF-8,
/// escaped here); `current` is the voter's acknowledged choice, if known.
pub fn render(
    labels: &[String; 2],
    current: Option<Choice>,
    host: &str,
    notice: Notice<'_>,
) -> String {
    let a = escape(&labels[0]);
    let b = escape(&labels[1]);
    let button = |choice: Choice, label: &str| {
        let chosen = current == Some(choice);
        let class = if chosen { "choice chosen" } else { "choice" };
        let mark = if chosen {
            "<span class=\"mark\" aria-hidden=\"true\">✓</span>"
        } else {
            ""
        };
        format!(
            "<button class=\"{class}\" name=\"vote\" value=\"{id}\" aria-pressed=\"{chosen}\">{mark}{label}</button>",
            id = choice.as_str()
        )
    };
    let status = match (notice, current) {
        (Notice::Error(message), _) => {
            format!(
                "<p class=\"notice error\" role=\"alert\">{}</p>",
                escape(message)
            )
        }
        (Notice::None, Some(choice)) => {
            let label = if choice == Choice::A { &a } else { &b };
            format!("<p class=\"notice\" role=\"status\">Your vote: <strong>{label}</strong>. You can change it.</p>")
        }
        (Notice::None, None) => {
            "<p class=\"notice\">Pick one. You can change your mind later.</p>".to_owned()
        }
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{a} vs {b}</title>
<style>
  :root {{ color-scheme: light dark; font-family: system-ui, sans-serif; }}
  body {{ margin: 0; min-height: 100vh; display: flex; flex-direction: column;
         align-items: center; justify-content: center; background: #f4f5f7; color: #1d2330; }}
  main {{ width: min(32rem, 92vw); text-align: center; }}
  h1 {{ font-size: clamp(1.6rem, 6vw, 2.4rem); margin: 0 0 1rem; unicode-bidi: plaintext; }}
  form {{ display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }}
  @media (max-width: 28rem) {{ form {{ grid-template-columns: 1fr; }} }}
  .choice {{ font: inherit; font-size: 1.4rem; padding: 1.6rem 1rem; border: 3px solid transparent;
            border-radius: 1rem; cursor: pointer; color: #fff; unicode-bidi: plaintext; }}
  .choice[value="a"] {{ background: #2f6fdb; }}
  .choice[value="b"] {{ background: #d9534f; }}
  .choice:focus-visible {{ outline: 3px solid #1d2330; outline-offset: 3px; }}
  .chosen {{ border-color: #1d2330; box-shadow: 0 0 0 3px #fff inset; }}
  .mark {{ margin-inline-end: .5rem; }}
  .notice {{ margin: 1.2rem 0; }}
  .error {{ color: #b00020; font-weight: 600; }}
  footer {{ margin-top: 2rem; font-size: .8rem; opacity: .7; }}
  @media (prefers-color-scheme: dark) {{ body {{ background: #14171c; color: #e8eaf0; }}
    .chosen {{ border-color: #e8eaf0; }} }}
</style>
</head>
<body>
<main>
<h1><bdi>{a}</bdi> vs <bdi>{b}</bdi></h1>
<form method="post" action="/">
{button_a}
{button_b}
</form>
{status}
</main>
<footer>Processed by container <code>{host}</code></footer>
</body>
</html>
"#,
        button_a = button(Choice::A, &a),
        button_b = button(Choice::B, &b),
        host = escape(host),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(a: &str, b: &str) -> [String; 2] {
        [a.to_owned(), b.to_owned()]
    }

    #[test]
    fn shows_labels_in_any_script_and_the_current_choice() {
        let html = render(
            &labels("گندم", "عمو"),
            Some(Choice::B),
            "vote-1",
            Notice::None,
        );
        assert!(html.contains("گندم") && html.contains("عمو"));
        assert!(html.contains("Your vote: <strong>عمو</strong>"));
        assert!(html.contains("value=\"b\" aria-pressed=\"true\""));
        assert!(html.contains("<code>vote-1</code>"));
    }

    #[test]
    fn escapes_hostile_labels_and_messages() {
        let html = render(
            &labels("<script>x()</script>", "\"b\""),
            None,
            "<h>",
            Notice::Error("<b>bad</b>"),
        );
        assert!(!html.contains("<script>x()"));
        assert!(html.contains("&lt;script&gt;") && html.contains("&quot;b&quot;"));
        assert!(html.contains("&lt;b&gt;bad&lt;/b&gt;") && html.contains("&lt;h&gt;"));
    }
}
