//! Column alignment as Go's `text/tabwriter` does it for the docker CLI
//! (`minwidth 10, padding 3`): tables line up the way users already read them.

pub struct Table {
    rows: Vec<Vec<String>>,
}

const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table {
            rows: vec![header.into_iter().map(Into::into).collect()],
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn render(&self) -> String {
        let ncols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; ncols];
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                line.push_str(c);
                if i + 1 < r.len() {
                    let w = (widths[i] + PADDING).max(MIN_WIDTH);
                    line.extend(std::iter::repeat_n(' ', w - c.chars().count()));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_like_go_tabwriter() {
        let mut t = super::Table::new(["TYPE", "TOTAL"]);
        t.row(["Images", "5"]);
        t.row(["Local Volumes", "2"]);
        assert_eq!(
            t.render(),
            "TYPE            TOTAL\nImages          5\nLocal Volumes   2\n"
        );
    }
}
