-- Run once by the postgres image on an empty data directory
-- (/docker-entrypoint-initdb.d).  The role's password is given as a SCRAM
-- verifier, the same one as in docker/userlist.txt: PostgreSQL stores it as it
-- is, and pgslab logs in with the key recovered from the client's own SCRAM
-- proof, so the plain password ("app_password", for pgbench) is stored nowhere.
SET password_encryption = 'scram-sha-256';
CREATE ROLE app LOGIN PASSWORD 'SCRAM-SHA-256$4096:xLwNwo1bMEkeKzUNrwynkw==$YYBkIRL4MJKAEeKNcTHN5eT9xBTRk/zdslLoKokFklw=:kBP2uY5W4McLCLaTKdNhX+fghbMAsHNS18x1+EcCirY=';
CREATE DATABASE app OWNER app;
