//! Line-oriented text that round-trips byte for byte, and the two kinds of edit hostcert makes.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// One change hostcert made to a text file, recorded so it can be undone later even if the
/// admin has edited the file since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Edit {
    /// Whole lines inserted as one run. The first line is hostcert's marker comment; when the
    /// last line is an end marker, everything between the two markers belongs to hostcert.
    Lines {
        /// The inserted lines, without line terminators.
        lines: Vec<String>,
    },
    /// `word` appended to the line whose first field is `key` (an nsswitch.conf source).
    Word {
        /// The line's first field, e.g. `passwd:`.
        key: String,
        /// The appended word.
        word: String,
    },
}

/// What [`Text::revert`] did with each edit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RevertReport {
    /// Edits found and removed.
    pub removed: usize,
    /// Edits found neither as written nor by their marker: someone removed them already.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    content: Vec<u8>,
    /// `"\n"`, `"\r\n"`, or empty for a last line without a terminator.
    eol: &'static str,
}

/// A text file as lines, keeping every byte (encoding, line endings, a missing final newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    lines: Vec<Line>,
}

impl Text {
    /// Splits `bytes` into lines.
    pub fn parse(bytes: &[u8]) -> Text {
        let mut lines = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let (content, eol) = if i > 0 && rest[i - 1] == b'\r' {
                        (&rest[..i - 1], "\r\n")
                    } else {
                        (&rest[..i], "\n")
                    };
                    lines.push(Line {
                        content: content.to_vec(),
                        eol,
                    });
                    rest = &rest[i + 1..];
                }
                None => {
                    lines.push(Line {
                        content: rest.to_vec(),
                        eol: "",
                    });
                    rest = &[];
                }
            }
        }
        Text { lines }
    }

    /// The bytes of the file.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for line in &self.lines {
            out.extend_from_slice(&line.content);
            out.extend_from_slice(line.eol.as_bytes());
        }
        out
    }

    /// How many lines there are.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Line `i` as text (invalid UTF-8 replaced, for reading only).
    pub fn line(&self, i: usize) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.lines[i].content)
    }

    /// Every line as text, for reading.
    pub fn lines(&self) -> impl Iterator<Item = Cow<'_, str>> + '_ {
        (0..self.len()).map(|i| self.line(i))
    }

    /// The terminator the file uses: that of its first terminated line, else `\n`.
    fn eol(&self) -> &'static str {
        self.lines
            .iter()
            .map(|l| l.eol)
            .find(|e| !e.is_empty())
            .unwrap_or("\n")
    }

    /// Inserts `lines` before line `at` (or at the end) and returns the edit to record.
    pub fn insert_lines(&mut self, at: usize, lines: Vec<String>) -> Edit {
        let eol = self.eol();
        // Appending after a last line that has no terminator: that line gets one and ours
        // becomes the unterminated last line, so the file keeps its shape.
        let mut tail_eol = eol;
        if at == self.lines.len() {
            if let Some(last) = self.lines.last_mut() {
                if last.eol.is_empty() {
                    last.eol = eol;
                    tail_eol = "";
                }
            }
        }
        let count = lines.len();
        let new = lines.iter().enumerate().map(|(i, l)| Line {
            content: l.as_bytes().to_vec(),
            eol: if i + 1 == count { tail_eol } else { eol },
        });
        self.lines.splice(at..at, new);
        Edit::Lines { lines }
    }

    /// Appends `word` to line `i`, whose first field is `key`, before any trailing comment or
    /// template condition.
    pub fn append_word(&mut self, i: usize, key: &str, word: &str) -> Edit {
        let line = &mut self.lines[i];
        let (body, comment) = split_comment(&line.content);
        let trimmed_len = body
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |p| p + 1);
        let mut content = body[..trimmed_len].to_vec();
        content.push(b' ');
        content.extend_from_slice(word.as_bytes());
        content.extend_from_slice(&body[trimmed_len..]);
        content.extend_from_slice(comment);
        line.content = content;
        Edit::Word {
            key: key.to_string(),
            word: word.to_string(),
        }
    }

    /// Undoes `edits`, tolerating changes made since: a run of inserted lines is removed where it
    /// stands (or, if it was altered, from its marker to its end marker), an appended word is
    /// removed from its line. Lines that are not hostcert's are never touched.
    pub fn revert(&mut self, edits: &[Edit]) -> RevertReport {
        let mut report = RevertReport::default();
        for edit in edits {
            let found = match edit {
                Edit::Lines { lines } => self.remove_run(lines),
                Edit::Word { key, word } => self.remove_word(key, word),
            };
            if found {
                report.removed += 1;
            } else {
                report.missing.push(describe(edit));
            }
        }
        report
    }

    fn remove_run(&mut self, run: &[String]) -> bool {
        let Some(first) = run.first() else {
            return true;
        };
        let matches = |line: &Line, want: &str| line.content == want.as_bytes();
        // Exactly as written.
        if let Some(start) = (0..self.lines.len()).find(|&s| {
            s + run.len() <= self.lines.len()
                && run.iter().zip(&self.lines[s..]).all(|(w, l)| matches(l, w))
        }) {
            self.remove_range(start, start + run.len());
            return true;
        }
        // Altered since: find our marker and remove what is ours.
        let Some(start) = self.lines.iter().position(|l| matches(l, first)) else {
            return false;
        };
        let end = match run.last() {
            Some(last) if run.len() > 1 && is_end_marker(last) => self.lines[start..]
                .iter()
                .position(|l| matches(l, last))
                .map_or(start + 1, |p| start + p + 1),
            _ => {
                // A marker and the lines it introduced: take each following line that is still ours.
                let mut end = start + 1;
                for want in &run[1..] {
                    if end < self.lines.len() && matches(&self.lines[end], want) {
                        end += 1;
                    } else {
                        break;
                    }
                }
                end
            }
        };
        self.remove_range(start, end);
        true
    }

    fn remove_range(&mut self, start: usize, end: usize) {
        // A removed unterminated tail leaves the line before it as the file's last line,
        // which had no terminator before we appended.
        let unterminated_tail = end == self.lines.len() && self.lines[end - 1].eol.is_empty();
        self.lines.drain(start..end);
        if unterminated_tail {
            if let Some(last) = self.lines.last_mut() {
                last.eol = "";
            }
        }
    }

    fn remove_word(&mut self, key: &str, word: &str) -> bool {
        let Some(i) = self
            .lines
            .iter()
            .position(|l| first_field(&l.content) == Some(key.as_bytes()))
        else {
            return false;
        };
        let line = &mut self.lines[i];
        let (body, comment) = split_comment(&line.content);
        let word = word.as_bytes();
        let is_blank = |b: &u8| b.is_ascii_whitespace();
        // Find the word as a whole field after the key, and remove it with the blanks before it.
        let mut from = key.len().min(body.len());
        while let Some(pos) = body[from..].windows(word.len()).position(|w| w == word) {
            let (start, end) = (from + pos, from + pos + word.len());
            let whole =
                body[..start].last().is_some_and(is_blank) && body.get(end).is_none_or(is_blank);
            if whole {
                let cut_from = body[..start]
                    .iter()
                    .rposition(|b| !is_blank(b))
                    .map_or(0, |p| p + 1);
                let mut content = body[..cut_from].to_vec();
                content.extend_from_slice(&body[end..]);
                content.extend_from_slice(comment);
                line.content = content;
                return true;
            }
            from = end;
        }
        false
    }
}

/// Whether a marker line closes a block (its text names an end).
fn is_end_marker(line: &str) -> bool {
    line.starts_with('#') && line.contains("END hostcert")
}

/// Splits a config line at its `#` comment or authselect `{...}` template condition (kept in
/// the second part).
fn split_comment(content: &[u8]) -> (&[u8], &[u8]) {
    match content.iter().position(|&b| b == b'#' || b == b'{') {
        Some(i) => content.split_at(i),
        None => (content, &[]),
    }
}

/// The first whitespace-separated field of a line.
fn first_field(content: &[u8]) -> Option<&[u8]> {
    content
        .split(|b| b.is_ascii_whitespace())
        .find(|f| !f.is_empty())
}

fn describe(edit: &Edit) -> String {
    match edit {
        Edit::Lines { lines } => format!("lines starting {:?}", lines.first().map_or("", |s| s)),
        Edit::Word { key, word } => format!("{word:?} on the {key:?} line"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(bytes: &[u8]) {
        assert_eq!(Text::parse(bytes).render(), bytes);
    }

    #[test]
    fn parse_render_is_byte_exact() {
        roundtrip(b"");
        roundtrip(b"a\nb\n");
        roundtrip(b"a\r\nb\r\n");
        roundtrip(b"a\nb");
        roundtrip(b"\n\n\xff\xfe latin\xe9\n");
        roundtrip(b"mixed\r\nends\nhere");
    }

    #[test]
    fn insert_then_revert_restores_bytes() {
        for original in [&b"a\nb\n"[..], b"a\r\nb\r\n", b"a\nb", b""] {
            let len = Text::parse(original).len();
            for at in [0, len / 2, len] {
                let mut text = Text::parse(original);
                let edit = text.insert_lines(at, vec!["# hostcert".into(), "x".into()]);
                assert_ne!(text.render(), original);
                let report = text.revert(&[edit]);
                assert_eq!(report.removed, 1);
                assert_eq!(text.render(), original, "at {at} of {original:?}");
            }
        }
    }

    #[test]
    fn inserted_lines_follow_the_file_line_endings() {
        let mut text = Text::parse(b"a\r\nb\r\n");
        text.insert_lines(1, vec!["x".into()]);
        assert_eq!(text.render(), b"a\r\nx\r\nb\r\n");
    }

    #[test]
    fn altered_block_is_removed_between_markers_only() {
        let block = vec![
            "# BEGIN hostcert".to_string(),
            "HostKey k".to_string(),
            "# END hostcert".to_string(),
        ];
        let mut text =
            Text::parse(b"# BEGIN hostcert\nHostKey k\nAdminLine yes\n# END hostcert\nPort 22\n");
        let report = text.revert(&[Edit::Lines { lines: block }]);
        assert_eq!(report.removed, 1);
        assert_eq!(text.render(), b"Port 22\n");
    }

    #[test]
    fn altered_pam_line_keeps_the_admins_replacement() {
        let run = vec![
            "# added by hostcert".to_string(),
            "session optional pam_mkhomedir.so".to_string(),
        ];
        let mut text = Text::parse(
            b"a\n# added by hostcert\nsession optional pam_mkhomedir.so umask=0022\nb\n",
        );
        text.revert(&[Edit::Lines { lines: run }]);
        assert_eq!(
            text.render(),
            b"a\nsession optional pam_mkhomedir.so umask=0022\nb\n"
        );
    }

    #[test]
    fn words_are_appended_and_removed_keeping_the_rest_of_the_line() {
        let original = b"passwd:         files systemd # local first\ngroup: files\n";
        let mut text = Text::parse(original);
        let e1 = text.append_word(0, "passwd:", "hostcert");
        let e2 = text.append_word(1, "group:", "hostcert");
        assert_eq!(
            text.render(),
            b"passwd:         files systemd hostcert # local first\ngroup: files hostcert\n"
        );
        // The admin adds a source after ours; revert keeps it.
        let mut edited = Text::parse(
            b"passwd:         files systemd hostcert ldap # local first\ngroup: files hostcert\n",
        );
        let report = edited.revert(&[e1.clone(), e2.clone()]);
        assert_eq!(report.removed, 2);
        assert_eq!(
            edited.render(),
            b"passwd:         files systemd ldap # local first\ngroup: files\n"
        );
        text.revert(&[e1, e2]);
        assert_eq!(text.render(), original);
    }

    #[test]
    fn missing_edits_are_reported_not_guessed() {
        let mut text = Text::parse(b"passwd: files\n");
        let report = text.revert(&[
            Edit::Word {
                key: "passwd:".into(),
                word: "hostcert".into(),
            },
            Edit::Lines {
                lines: vec!["# hostcert marker".into()],
            },
        ]);
        assert_eq!(report.removed, 0);
        assert_eq!(report.missing.len(), 2);
        assert_eq!(text.render(), b"passwd: files\n");
    }
}
