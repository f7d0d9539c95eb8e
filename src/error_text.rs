//! One line of text for an error and its causes, as `--json` outputs and reports carry it.

/// `e` and its sources on one line. A source whose text the line already holds is left out:
/// many errors quote their cause in their own message (`cannot read key file X: {source}`),
/// and printing it again doubles it. Outer messages that say little on their own
/// (object_store's "Generic S3 error", espflash's "Error while connecting to device") get
/// their causes appended.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("public key k.pub of the profile: {source}")]
    struct Outer {
        source: Inner,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read key file k.pub")]
    struct Inner {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_the_message_already_quotes_is_not_repeated() {
        let e = Outer {
            source: Inner {
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "No such file"),
            },
        };
        assert_eq!(
            error_chain(&e),
            "public key k.pub of the profile: cannot read key file k.pub: No such file"
        );
    }
}
