//! A line diff for the change evidence of CC8.1: the lines removed (`-`) and added (`+`)
//! from one version of a file to the next, with a line of context either side, from the
//! longest common subsequence of lines. Files too large for the quadratic table (more than
//! [`MAX_CELLS`] line pairs) are shown as wholly replaced, and say so.

/// The largest `old lines × new lines` the diff compares line by line.
pub const MAX_CELLS: usize = 4_000_000;

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    Same(&'a str),
    Removed(&'a str),
    Added(&'a str),
}

/// The lines of `old` and `new` as kept, removed and added, in order.
pub fn lines<'a>(old: &'a str, new: &'a str) -> Vec<Line<'a>> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len().saturating_mul(b.len()) > MAX_CELLS {
        return a.iter().map(|l| Line::Removed(l)).chain(b.iter().map(|l| Line::Added(l))).collect();
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let w = b.len() + 1;
    let mut lcs = vec![0u32; (a.len() + 1) * w];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i * w + j] =
                if a[i] == b[j] { lcs[(i + 1) * w + j + 1] + 1 } else { lcs[(i + 1) * w + j].max(lcs[i * w + j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(Line::Same(a[i]));
            i += 1;
            j += 1;
        } else if lcs[(i + 1) * w + j] >= lcs[i * w + j + 1] {
            out.push(Line::Removed(a[i]));
            i += 1;
        } else {
            out.push(Line::Added(b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| Line::Removed(l)));
    out.extend(b[j..].iter().map(|l| Line::Added(l)));
    out
}

/// The diff as text: changed lines prefixed `-`/`+`, one unchanged line of context either
/// side prefixed with a space, `…` where unchanged lines were left out. Also the number of
/// lines removed and added.
pub fn render(old: &str, new: &str) -> (String, usize, usize) {
    let all = lines(old, new);
    let changed: Vec<bool> = all.iter().map(|l| !matches!(l, Line::Same(_))).collect();
    let near = |k: usize| changed[k] || (k > 0 && changed[k - 1]) || changed.get(k + 1).copied().unwrap_or(false);
    let (mut removed, mut added) = (0, 0);
    let mut out: Vec<String> = Vec::new();
    let mut skipped = false;
    for (k, line) in all.iter().enumerate() {
        if !near(k) {
            skipped = true;
            continue;
        }
        if skipped && !out.is_empty() {
            out.push("…".to_owned());
        }
        skipped = false;
        out.push(match line {
            Line::Same(l) => format!(" {l}"),
            Line::Removed(l) => {
                removed += 1;
                format!("-{l}")
            }
            Line::Added(l) => {
                added += 1;
                format!("+{l}")
            }
        });
    }
    (out.join("\n"), removed, added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_edit_with_context() {
        let old = "a\nb\nc\nd\ne\nf\n";
        let new = "a\nb\nC\nd\ne\nf\ng\n";
        let (text, removed, added) = render(old, new);
        assert_eq!(text, " b\n-c\n+C\n d\n…\n f\n+g");
        assert_eq!((removed, added), (1, 2));
        assert_eq!(render("x\n", "x\n"), (String::new(), 0, 0));
        assert_eq!(render("", "new\n"), ("+new".to_owned(), 0, 1));
    }

    #[test]
    fn a_huge_file_is_replaced_whole() {
        let old: String = (0..3000).map(|i| format!("{i}\n")).collect();
        let new: String = (0..3000).map(|i| format!("{}\n", i + 1)).collect();
        let all = lines(&old, &new);
        assert_eq!(all.len(), 6000);
        assert!(matches!(all[0], Line::Removed("0")) && matches!(all[3000], Line::Added("1")));
    }
}
