//! The report as Markdown (GitHub-flavoured tables). Cell text is escaped so it can neither
//! break the table (`|`, line breaks) nor become markup or inline HTML (`<`, `*`, `[`, …);
//! SQL goes in fenced blocks whose fence is longer than any backtick run inside.

use super::RenderOptions;
use crate::table::{Report, Table};
use gatelog_model::IpeRecord;
use std::fmt::Write as _;

pub fn render(report: &Report, options: RenderOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", escape(&report.title));
    let _ = writeln!(out, "Period: {}  ", escape(&report.period));
    let _ = writeln!(out, "Produced by gatelog {}  ", escape(&report.gatelog_version));
    let _ = writeln!(out, "Regenerate with:\n");
    fenced(&mut out, "sh", &report.regenerate);
    if !report.parameters.is_empty() {
        let _ = writeln!(out, "| parameter | value |\n| --- | --- |");
        for (k, v) in &report.parameters {
            let _ = writeln!(out, "| {} | {} |", escape(k), escape(v));
        }
        out.push('\n');
    }
    for section in &report.sections {
        let _ = writeln!(out, "## {}\n", escape(&section.title));
        for p in &section.paragraphs {
            let _ = writeln!(out, "{}\n", escape(p));
        }
        for table in &section.tables {
            render_table(&mut out, table, options);
        }
    }
    out
}

fn render_table(out: &mut String, table: &Table, options: RenderOptions) {
    let _ = writeln!(out, "### {}\n", escape(&table.title));
    if !table.description.is_empty() {
        let _ = writeln!(out, "{}\n", escape(&table.description));
    }
    if table.columns.is_empty() {
        return;
    }
    let names: Vec<String> = table.columns.iter().map(|c| escape(&c.name)).collect();
    let _ = writeln!(out, "| {} |", names.join(" | "));
    let _ = writeln!(out, "|{}", " --- |".repeat(names.len()));
    for row in table.rows.iter().take(options.max_rows) {
        let cells: Vec<String> = row.iter().map(|c| escape(&c.display())).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let shown = table.rows.len().min(options.max_rows);
    let _ = writeln!(
        out,
        "\n{} of {} rows shown; every row is in `{}`.\n",
        shown,
        table.total_rows(),
        super::csv::file_name(table)
    );
    if let Some(s) = &table.sample {
        let _ = writeln!(
            out,
            "Sample of `{}` ({} rows): {} rows, seed `{}`, frequency {:?}, risk {:?}; re-draw it with the SQL below.\n",
            escape(&s.population),
            s.population_size,
            s.size,
            s.seed.replace('`', "'"),
            s.frequency,
            s.risk
        );
    }
    render_ipe(out, &table.ipe);
}

fn render_ipe(out: &mut String, ipe: &IpeRecord) {
    // A reproducible report records no wall-clock duration (0): say nothing rather than 0 ms.
    let took = if ipe.elapsed_ms > 0 { format!(" in {} ms", ipe.elapsed_ms) } else { String::new() };
    let _ = writeln!(
        out,
        "**How this was produced (IPE):** {} {}, database `{}`, {} rows, ran at {}{took}.\n",
        escape(&ipe.server),
        escape(&ipe.server_version),
        ipe.database.replace('`', "'"),
        ipe.row_count,
        ipe.ran_at,
    );
    fenced(out, "sql", &ipe.sql);
    if !ipe.parameters.is_empty() {
        let _ = writeln!(out, "| parameter | type | value |\n| --- | --- | --- |");
        for p in &ipe.parameters {
            let _ = writeln!(out, "| {} | {} | {} |", escape(&p.name), escape(&p.kind), escape(&p.value));
        }
        out.push('\n');
    }
    for r in &ipe.reconciliations {
        let verdict = if r.passed { "PASSED" } else { "FAILED" };
        let _ = writeln!(
            out,
            "- **{verdict}** {}: {} (expected {}, found {})",
            escape(&r.name),
            escape(&r.description),
            escape(&r.expected),
            escape(&r.actual)
        );
    }
    if !ipe.reconciliations.is_empty() {
        out.push('\n');
    }
}

/// A fenced code block whose fence no backtick run inside can close.
fn fenced(out: &mut String, lang: &str, code: &str) {
    let longest = code.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let _ = writeln!(out, "{fence}{lang}\n{}\n{fence}\n", code.trim_end());
}

/// Escapes text for a Markdown paragraph or table cell.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' => out.push_str("<br>"),
            '\r' => {}
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}
