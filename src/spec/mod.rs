//! spec (to be filled in)
