-- Registration numbers of organisations (issue 17): the number a state register gives a
-- legal person, stated by the federation where an organisation has no Amtlicher
-- Regionalschlüssel to serve as it (the Bund) or is registered otherwise. Its Gaia-X
-- `gx:LegalPerson` names it as a credential of its own.
CREATE TABLE organisation_registrations (
    organisation TEXT PRIMARY KEY REFERENCES organisations(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    value        TEXT NOT NULL,
    stated_by    TEXT NOT NULL,
    stated_at    TEXT NOT NULL
);
