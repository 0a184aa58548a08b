//! metrics (to be filled in)
