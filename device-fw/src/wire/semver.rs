//! Semantic versions, compared as semver.org §11 orders them, without a heap.
