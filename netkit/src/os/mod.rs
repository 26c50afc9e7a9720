//! The operating system beneath everything: network namespaces, this
//! process's capabilities, errno names, what the running kernel supports,
//! and its expedited RCU grace periods for bulk changes.

pub mod caps;
pub mod errno;
pub mod netns;
pub mod probe;
pub mod rcu;
