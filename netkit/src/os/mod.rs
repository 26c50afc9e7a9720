//! The operating system beneath everything: network namespaces, this
//! process's capabilities, errno names and what the running kernel supports.

pub mod caps;
pub mod errno;
pub mod netns;
pub mod probe;
