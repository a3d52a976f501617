//! The matrix of scores by planted kinds as HTML ([`crate::eval::matrix`]): the report of a
//! run with planted hardness opens with it, and `vog experiment` writes the one gathered
//! across its runs. Each cell shows the AUROC by the score's claim with its interval (or,
//! over several runs, their lowest and highest AUROC) and is marked as claimed, inverse,
//! or not enough evidence, in words as well as colour.
use crate::eval::matrix::{sign, Matrix};
use crate::export::esc;
use std::fmt::Write as _;

/// The matrix as a table, then the score to use per column.
pub fn matrix_html(m: &Matrix) -> String {
    let mut out = String::from(
        "<p>Each cell: the AUROC of a score for picking out the planted examples among the \
         training examples nothing was planted into, oriented the way the score claims to \
         point (above 0.5: it does), with its 95% interval (over several runs: their lowest \
         and highest AUROC). <span class=\"as-claimed\">+ as claimed</span>, <span \
         class=\"inverse\">&minus; the inverse</span>, <span class=\"unclear\">? not enough \
         evidence</span>; never flipped.</p><table class=\"matrix\"><tr><th>score</th>",
    );
    for (c, name) in m.columns.iter().enumerate() {
        let _ = write!(
            out,
            "<th>{}<br><small>{} planted, {} run(s)</small></th>",
            esc(name),
            m.positives[c],
            m.runs[c]
        );
    }
    out.push_str("</tr>");
    for (s, row) in m.scores.iter().zip(&m.cells) {
        let _ = write!(out, "<tr><td>{}</td>", esc(s));
        for cell in row {
            match cell {
                None => out.push_str("<td>n/a</td>"),
                Some(x) => {
                    let class = match sign(x) {
                        "+" => "as-claimed",
                        "-" => "inverse",
                        _ => "unclear",
                    };
                    let _ = write!(
                        out,
                        "<td class=\"{class}\">{:.3} {}<br><small>[{:.3}, {:.3}]</small></td>",
                        x.auroc,
                        sign(x).replace('-', "&minus;"),
                        x.low,
                        x.high
                    );
                }
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table><ul class=\"advice\">");
    for (c, name) in m.columns.iter().enumerate() {
        let _ = write!(out, "<li><b>{}</b>: {}</li>", esc(name), esc(&m.advice(c)));
    }
    out.push_str("</ul>");
    out
}
