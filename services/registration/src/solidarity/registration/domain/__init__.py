"""Pure rules of registration: partners, submissions, seats and the catalog read model."""
