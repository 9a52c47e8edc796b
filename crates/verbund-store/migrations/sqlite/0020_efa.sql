-- "Einer für Alle" in the catalog (issue 18): the operating Land of an EfA offering and
-- the Länder it serves (`,01,02,` — or `*` for every Land), beside its spec, so that the
-- catalog filters by them.
ALTER TABLE offerings ADD COLUMN efa_operator TEXT;
ALTER TABLE offerings ADD COLUMN efa_for TEXT;
CREATE INDEX offerings_efa ON offerings(efa_operator, name);
