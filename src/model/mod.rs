//! model (to be filled in)
