//! train (to be filled in)
