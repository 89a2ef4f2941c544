BEGIN TRANSACTION;
CREATE TABLE instances (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    task_name    TEXT NOT NULL,
    array_index  INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    current      INTEGER NOT NULL DEFAULT 1,
    state        TEXT NOT NULL,
    identity     TEXT,
    parts        TEXT,
    output       TEXT,
    output_hash  TEXT,
    cached_from  INTEGER REFERENCES instances (id),
    error_text   TEXT,
    job_id       TEXT,
    submitted_at REAL,
    started_at   REAL,
    finished_at  REAL,
    UNIQUE (run_id, task_name, array_index, attempt),
    CHECK (state <> 'SUCCESS' OR
           (output_hash IS NOT NULL AND (output IS NOT NULL OR cached_from IS NOT NULL)))
);
INSERT INTO "instances" VALUES(1,'legacy-20261207-8f21','items',-1,1,1,'SUCCESS','6d81a171582b4cb43cbabeb0aca5568b05f5046c1414871ec049dacd3b1d095f','{"inputs":{},"params":{"n":"4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce"},"task":"items","v":"1","version":"1","workflow":"legacy"}','[0,1,2]','434026bd98ff2d8a2fb346c89ae9de006d1e2a6862832b6b3cd86e51de36d5c5',NULL,NULL,NULL,NULL,1.79660425085790157319e+09,1.79660425085792756078e+09);
INSERT INTO "instances" VALUES(2,'legacy-20261207-8f21','square',0,1,1,'SUCCESS','9e3964b968222a2f91b7e2cbf37d6bd756c63806f70eabaeaffd13ef1a190458','{"inputs":{"x":"5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9"},"params":{},"task":"square","v":"1","version":"1","workflow":"legacy"}','0','5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9',NULL,NULL,NULL,NULL,1.79660425085858345027e+09,1.79660425085859966278e+09);
INSERT INTO "instances" VALUES(3,'legacy-20261207-8f21','square',1,1,1,'SUCCESS','86f702bbf6c3c9542b70af8ff015508b8319c86c07e3bc9d7cbc62663d4eff70','{"inputs":{"x":"6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"},"params":{},"task":"square","v":"1","version":"1","workflow":"legacy"}','1','6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b',NULL,NULL,NULL,NULL,1.796604250858748436e+09,1.79660425085875892644e+09);
INSERT INTO "instances" VALUES(4,'legacy-20261207-8f21','square',2,1,1,'SUCCESS','14dd2b529127f08fc93b7a731d29688f3c9a4b73ba39361d237a7bdd400126a2','{"inputs":{"x":"d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35"},"params":{},"task":"square","v":"1","version":"1","workflow":"legacy"}','4','4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a',NULL,NULL,NULL,NULL,1.79660425085876822469e+09,1.79660425085877299309e+09);
INSERT INTO "instances" VALUES(5,'legacy-20261207-8f21','total',-1,1,1,'SUCCESS','fc2f37b98ae3da11fc081e6f95f8f304d30321ce36fb87df17f85117f303b444','{"inputs":{"xs":"731b22973afc65edef8375b47f415a4bca6463fe35e6c7614b36cfbe2eee7889"},"params":{},"task":"total","v":"1","version":"1","workflow":"legacy"}','5','ef2d127de37b942baad06145e54b0c619a1f22327b2ebbcfbec78f5564afe39d',NULL,NULL,NULL,NULL,1.79660425085922431948e+09,1.7966042508592381477e+09);
INSERT INTO "instances" VALUES(6,'legacy-20261207-513c','items',-1,1,1,'SUCCESS','6d81a171582b4cb43cbabeb0aca5568b05f5046c1414871ec049dacd3b1d095f',NULL,NULL,'434026bd98ff2d8a2fb346c89ae9de006d1e2a6862832b6b3cd86e51de36d5c5',1,NULL,NULL,NULL,1.79660425086752367014e+09,1.79660425086752367014e+09);
INSERT INTO "instances" VALUES(7,'legacy-20261207-513c','square',0,1,1,'SUCCESS','9e3964b968222a2f91b7e2cbf37d6bd756c63806f70eabaeaffd13ef1a190458',NULL,NULL,'5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9',2,NULL,NULL,NULL,1.79660425086814141276e+09,1.79660425086814141276e+09);
INSERT INTO "instances" VALUES(8,'legacy-20261207-513c','square',1,1,1,'SUCCESS','86f702bbf6c3c9542b70af8ff015508b8319c86c07e3bc9d7cbc62663d4eff70',NULL,NULL,'6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b',3,NULL,NULL,NULL,1.79660425086814141276e+09,1.79660425086814141276e+09);
INSERT INTO "instances" VALUES(9,'legacy-20261207-513c','square',2,1,1,'SUCCESS','14dd2b529127f08fc93b7a731d29688f3c9a4b73ba39361d237a7bdd400126a2',NULL,NULL,'4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a',4,NULL,NULL,NULL,1.79660425086814141276e+09,1.79660425086814141276e+09);
INSERT INTO "instances" VALUES(10,'legacy-20261207-513c','total',-1,1,1,'SUCCESS','fc2f37b98ae3da11fc081e6f95f8f304d30321ce36fb87df17f85117f303b444',NULL,NULL,'ef2d127de37b942baad06145e54b0c619a1f22327b2ebbcfbec78f5564afe39d',5,NULL,NULL,NULL,1.79660425086842179299e+09,1.79660425086842179299e+09);
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO "meta" VALUES('schema_version','4');
CREATE TABLE reasons (
    run_id      TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    task_name   TEXT NOT NULL,
    array_index INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (run_id, task_name, array_index, attempt)
) WITHOUT ROWID;
CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY,
    graph_name  TEXT NOT NULL,
    user        TEXT NOT NULL,
    host        TEXT NOT NULL,
    run_dir     TEXT NOT NULL,
    executor    TEXT NOT NULL,
    params      TEXT NOT NULL,
    options     TEXT NOT NULL,
    status      TEXT NOT NULL,
    owner_host  TEXT,
    owner_pid   INTEGER,
    owner_start TEXT,
    dispatcher  TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    finished_at REAL
);
INSERT INTO "runs" VALUES('legacy-20261207-8f21','legacy','root','vm','/tmp/v4run','foreground','{"n":3}','{"force":false,"force_tasks":[],"verify":false,"max_workers":1,"on_error":"stop"}','SUCCESS',NULL,NULL,NULL,NULL,1.79660425083222389215e+09,1.79660425085960674283e+09,1.79660425085960674283e+09);
INSERT INTO "runs" VALUES('legacy-20261207-513c','legacy','root','vm','/tmp/v4run','foreground','{"n":3}','{"force":false,"force_tasks":[],"verify":false,"max_workers":1,"on_error":"stop"}','SUCCESS',NULL,NULL,NULL,NULL,1.79660425086279606815e+09,1.79660425086874675753e+09,1.79660425086874675753e+09);
CREATE TABLE tasks (
    run_id    TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    task_name TEXT NOT NULL,
    position  INTEGER NOT NULL,
    is_array  INTEGER NOT NULL,
    spec      TEXT NOT NULL,
    expected  INTEGER,
    PRIMARY KEY (run_id, task_name)
) WITHOUT ROWID;
INSERT INTO "tasks" VALUES('legacy-20261207-513c','items',0,0,'{"after": [], "array": false, "cache": true, "inputs": [], "params": {"n": "n"}, "resources": {"array_parallelism": null, "cpus": null, "mem": null, "time": null}, "returns": "list[int]", "version": "1"}',1);
INSERT INTO "tasks" VALUES('legacy-20261207-513c','square',1,1,'{"after": [], "array": true, "cache": true, "inputs": [{"arg": "x", "mode": "fanout", "steps": ["items"]}], "params": {}, "resources": {"array_parallelism": null, "cpus": null, "mem": null, "time": null}, "returns": "int", "version": "1"}',3);
INSERT INTO "tasks" VALUES('legacy-20261207-513c','total',2,0,'{"after": [], "array": false, "cache": true, "inputs": [{"arg": "xs", "mode": "gather", "steps": ["square"]}], "params": {}, "resources": {"array_parallelism": null, "cpus": null, "mem": null, "time": null}, "returns": "int", "version": "1"}',1);
INSERT INTO "tasks" VALUES('legacy-20261207-8f21','items',0,0,'{"after": [], "array": false, "cache": true, "inputs": [], "params": {"n": "n"}, "resources": {"array_parallelism": null, "cpus": null, "mem": null, "time": null}, "returns": "list[int]", "version": "1"}',1);
INSERT INTO "tasks" VALUES('legacy-20261207-8f21','square',1,1,'{"after": [], "array": true, "cache": true, "inputs": [{"arg": "x", "mode": "fanout", "steps": ["items"]}], "params": {}, "resources": {"array_parallelism": null, "cpus": null, "mem": null, "time": null}, "returns": "int", "version": "1"}',3);
INSERT INTO "tasks" VALUES('legacy-20261207-8f21','total',2,0,'{"after": [], "array": false, "cache": true, "inputs": [{"arg": "xs", "mode": "gather", "steps": ["square"]}], "params": {}, "resources": {"array_parallelism": null, "cpus": null, "mem": null, "time": null}, "returns": "int", "version": "1"}',1);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_graph ON runs (graph_name, created_at);
CREATE INDEX instances_current ON instances (run_id, task_name, state, cached_from)
    WHERE current = 1;
CREATE INDEX instances_cache ON instances (substr(identity, 1, 16)) WHERE cached_from IS NULL;
COMMIT;
