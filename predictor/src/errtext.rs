//! Error messages for people: an error and its causes as one line, each cause once.

/// `err` and its chain of sources joined by ": ", leaving out a source whose text the message
/// already holds (error types that print their cause and also return it as `source()` would
/// otherwise repeat it: "…: No such file (os error 2): No such file (os error 2)").
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read x.csv: {source}")]
    struct Repeats {
        source: std::io::Error,
    }

    #[test]
    fn causes_appear_once() {
        let e = Repeats {
            source: std::io::Error::other("no such file"),
        };
        assert_eq!(error_text(&e), "cannot read x.csv: no such file");
        let wrapped = anyhow::Error::new(e).context("loading the trace");
        assert_eq!(
            error_text(wrapped.as_ref()),
            "loading the trace: cannot read x.csv: no such file"
        );
        let plain = anyhow::anyhow!("no training rows").context("no training rows");
        assert_eq!(error_text(plain.as_ref()), "no training rows");
    }
}
