//! The HTML page: the tally rendered on the server, so it reads without
//! JavaScript, plus a few lines of inline script that keep it current from
//! `/events`. No external assets, so it works on an isolated network.

use std::fmt::Write;

use common::html::escape;

use common::schema::Counts;

use crate::config::Labels;

/// Each option's share of the total in tenths of a percent.
///
/// The first share is rounded half up and the second is what remains, so the
/// two always add up to exactly 100% (independent rounding can show 50.1% and
/// 50.0%). With no votes both are 0. The script on the page computes the same
/// way, so the server-rendered page and a live update never disagree.
pub fn shares(counts: Counts) -> [i64; 2] {
    let total = counts.total();
    if total <= 0 {
        return [0, 0];
    }
    // i128: a count near i64::MAX times 2000 must not overflow.
    let a = (i128::from(counts.a) * 2000 + i128::from(total)) / (2 * i128::from(total));
    let a = i64::try_from(a.clamp(0, 1000)).unwrap_or(0);
    [a, 1000 - a]
}

/// `123` as `12.3%`, `500` as `50%`: what JavaScript prints for `t / 10`.
pub fn format_share(tenths: i64) -> String {
    if tenths % 10 == 0 {
        format!("{}%", tenths / 10)
    } else {
        format!("{}.{}%", tenths / 10, tenths % 10)
    }
}

/// The whole page. `counts` is `None` before the first read of the database:
/// the page then says so and fills in when the first tally arrives.
pub fn render(labels: &Labels, counts: Option<Counts>, hostname: &str) -> String {
    let label_a = escape(&labels.a);
    let label_b = escape(&labels.b);
    let (votes, shares_text, widths, total, waiting) = match counts {
        Some(counts) => {
            let [share_a, share_b] = shares(counts);
            let shares_text = [format_share(share_a), format_share(share_b)];
            (
                [counts.a.to_string(), counts.b.to_string()],
                shares_text.clone(),
                shares_text,
                counts.total().to_string(),
                " hidden",
            )
        }
        None => {
            let dash = || "–".to_owned();
            (
                [dash(), dash()],
                [dash(), dash()],
                ["0%".to_owned(), "0%".to_owned()],
                dash(),
                "",
            )
        }
    };
    let mut page = String::with_capacity(4096);
    page.push_str(HEAD_START);
    let _ = write!(page, "<title>{label_a} vs {label_b}: results</title>");
    page.push_str(STYLE);
    page.push_str("</head>\n<body>\n<main>\n<h1>Results</h1>\n");
    let _ = write!(
        page,
        r#"<p id="waiting" class="note"{waiting}>Waiting for the first count from the database…</p>
<div class="bar"><span id="bar-a" class="a" style="width:{wa}"></span><span id="bar-b" class="b" style="width:{wb}"></span></div>
<table>
<tr class="a"><th scope="row"><span class="dot"></span><bdi>{label_a}</bdi></th><td id="votes-a">{va}</td><td id="share-a">{sa}</td></tr>
<tr class="b"><th scope="row"><span class="dot"></span><bdi>{label_b}</bdi></th><td id="votes-b">{vb}</td><td id="share-b">{sb}</td></tr>
<tr class="total"><th scope="row">Total</th><td id="total">{total}</td><td></td></tr>
</table>
</main>
<footer>Served by <bdi>{host}</bdi><span id="live"></span></footer>
"#,
        wa = widths[0],
        wb = widths[1],
        va = votes[0],
        vb = votes[1],
        sa = shares_text[0],
        sb = shares_text[1],
        host = escape(hostname),
    );
    page.push_str(SCRIPT);
    page.push_str("</body>\n</html>\n");
    page
}

const HEAD_START: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
"#;

const STYLE: &str = r#"
<style>
  :root { color-scheme: light dark; --a: #2a7de1; --b: #e8833a; }
  body { margin: 0; font: 16px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  main { max-width: 32rem; margin: 0 auto; padding: 1.5rem 1rem; }
  h1 { font-size: 1.5rem; margin: 0 0 1rem; }
  .note { padding: .5rem .75rem; border-radius: .375rem; background: #8883; }
  .bar { display: flex; height: 1.75rem; border-radius: .375rem; overflow: hidden; background: #8883; }
  .bar span { transition: width .4s ease; }
  .bar .a, tr.a .dot { background: var(--a); }
  .bar .b, tr.b .dot { background: var(--b); }
  table { width: 100%; margin-top: 1rem; border-collapse: collapse; font-size: 1.25rem; }
  th { text-align: start; font-weight: 600; overflow-wrap: anywhere; }
  td { text-align: end; padding-inline-start: 1rem; font-variant-numeric: tabular-nums; white-space: nowrap; }
  th, td { padding-block: .4rem; }
  tr.total { border-top: 1px solid #8886; font-size: 1rem; }
  .dot { display: inline-block; width: .75rem; height: .75rem; border-radius: 50%; margin-inline-end: .5rem; }
  footer { max-width: 32rem; margin: 0 auto; padding: 0 1rem 1rem; font-size: .75rem; opacity: .7; }
  #live:not(:empty)::before { content: " · "; }
</style>
"#;

/// Keeps the numbers current from `/events`. `textContent` only, never
/// `innerHTML`, so nothing received is ever parsed as markup. The path is
/// relative so the page also works behind a proxy that adds a path prefix.
const SCRIPT: &str = r#"<script>
(function () {
  "use strict";
  if (!window.EventSource) return;
  var el = function (id) { return document.getElementById(id); };
  var share = function (t) { return t / 10 + "%"; };
  var source = new EventSource("events");
  source.addEventListener("tally", function (event) {
    var tally = JSON.parse(event.data);
    var a = tally.options[0].votes, b = tally.options[1].votes, total = tally.total;
    var ta = total > 0 ? Math.round(a * 1000 / total) : 0;
    var tb = total > 0 ? 1000 - ta : 0;
    el("votes-a").textContent = a;
    el("votes-b").textContent = b;
    el("share-a").textContent = share(ta);
    el("share-b").textContent = share(tb);
    el("bar-a").style.width = share(ta);
    el("bar-b").style.width = share(tb);
    el("total").textContent = total;
    el("waiting").hidden = true;
  });
  source.onopen = function () { el("live").textContent = "live"; };
  source.onerror = function () { el("live").textContent = "reconnecting…"; };
})();
</script>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(a: i64, b: i64) -> Counts {
        Counts { a, b }
    }

    #[test]
    fn no_votes_means_no_share() {
        assert_eq!(shares(counts(0, 0)), [0, 0]);
    }

    #[test]
    fn shares_always_add_up_to_one_hundred_percent() {
        assert_eq!(shares(counts(1, 2)), [333, 667]);
        assert_eq!(shares(counts(2, 1)), [667, 333]);
        assert_eq!(shares(counts(12, 7)), [632, 368]);
        assert_eq!(shares(counts(1, 0)), [1000, 0]);
        assert_eq!(shares(counts(0, 5)), [0, 1000]);
        // Exactly half a tenth rounds up: 1/16 = 6.25%.
        assert_eq!(shares(counts(1, 15)), [63, 937]);
        // One vote in ten thousand still shows as a share, not as nothing.
        assert_eq!(shares(counts(1, 1999)), [1, 999]);
        assert_eq!(shares(counts(i64::MAX / 2, i64::MAX / 2)), [500, 500]);
        for (a, b) in [(1, 1), (1, 6), (5, 3), (999, 1), (7, 1_000_000)] {
            let [x, y] = shares(counts(a, b));
            assert_eq!(x + y, 1000, "{a} vs {b}");
        }
    }

    #[test]
    fn shares_print_like_javascript() {
        assert_eq!(format_share(0), "0%");
        assert_eq!(format_share(500), "50%");
        assert_eq!(format_share(1000), "100%");
        assert_eq!(format_share(632), "63.2%");
        assert_eq!(format_share(5), "0.5%");
    }

    #[test]
    fn escapes_markup_but_not_other_scripts() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("گندم"), "گندم");
    }

    #[test]
    fn renders_labels_numbers_and_host() {
        let labels = Labels {
            a: "<b>A</b>".to_owned(),
            b: "عمو".to_owned(),
        };
        let page = render(&labels, Some(counts(12, 7)), "web-1");
        assert!(page.contains("&lt;b&gt;A&lt;/b&gt;"));
        assert!(!page.contains("<b>A</b>"));
        assert!(page.contains("<bdi>عمو</bdi>"));
        assert!(page.contains(r#"<td id="share-a">63.2%</td>"#));
        assert!(page.contains(r#"<td id="total">19</td>"#));
        assert!(page.contains(r#"style="width:36.8%""#));
        assert!(page.contains("<bdi>web-1</bdi>"));
        assert!(page.contains(r#"id="waiting" class="note" hidden"#));
    }

    #[test]
    fn before_the_first_read_the_page_says_it_is_waiting() {
        let labels = Labels {
            a: "Cats".to_owned(),
            b: "Dogs".to_owned(),
        };
        let page = render(&labels, None, "web-1");
        assert!(page.contains(r#"<p id="waiting" class="note">"#));
        assert!(page.contains(r#"<td id="total">–</td>"#));
    }
}
