//! Interface names as the kernel accepts them (dev_valid_name), checked
//! before any netlink call so a bad name never reaches the kernel.

/// IFNAMSIZ minus the terminating NUL.
pub(crate) const MAX_LEN: usize = 15;

/// Why `name` cannot be an interface name, if it cannot.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an interface name cannot be empty".into());
    }
    if name.len() > MAX_LEN {
        return Err(format!(
            "interface name `{name}` is {} bytes long; the kernel allows at most {MAX_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` cannot be an interface name"));
    }
    if let Some(c) = name.chars().find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(format!("interface name `{name}` contains {c:?}; names cannot contain '/', ':' or whitespace"));
    }
    if name.contains('%') {
        return Err(format!(
            "interface name `{name}` contains '%'; give the exact name (templates like nk%d are not supported)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["nk0", "veth-pod1", "a", "exactly15chars_"] {
            assert!(check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_the_kernel_refuses() {
        for (bad, why) in [
            ("", "empty"),
            ("sixteen_chars_xx", "at most 15"),
            ("a/b", "'/'"),
            ("a b", "whitespace"),
            ("a\tb", "whitespace"),
            ("a:1", "':'"),
            (".", "cannot be"),
            ("..", "cannot be"),
            ("nk%d", "templates"),
        ] {
            let e = check(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
