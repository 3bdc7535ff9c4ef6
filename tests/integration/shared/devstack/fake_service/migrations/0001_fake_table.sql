-- The stand-in service's one table, to show its migrations ran.
CREATE TABLE fake_things (id bigserial PRIMARY KEY);
