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
INSERT INTO "instances" VALUES(1,'legacy-20261207-02cf','items',-1,1,1,'SUCCESS','6d81a171582b4cb43cbabeb0aca5568b05f5046c1414871ec049dacd3b1d095f','{"inputs":{},"params":{"n":"4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce"},"task":"items","v":"1","version":"1","workflow":"legacy"}','[0,1,2]','434026bd98ff2d8a2fb346c89ae9de006d1e2a6862832b6b3cd86e51de36d5c5',NULL,NULL,NULL,NULL,1.79660431967390632631e+09,1.7966043196739370823e+09);
INSERT INTO "instances" VALUES(2,'legacy-20261207-02cf','square',0,1,1,'SUCCESS','9e3964b968222a2f91b7e2cbf37d6bd756c63806f70eabaeaffd13ef1a190458','{"inputs":{"x":"5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9"},"params":{},"task":"square","v":"1","version":"1","workflow":"legacy"}','0','5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9',NULL,NULL,NULL,NULL,1.79660431967527532571e+09,1.79660431967529344559e+09);
INSERT INTO "instances" VALUES(3,'legacy-20261207-02cf','square',1,1,1,'SUCCESS','86f702bbf6c3c9542b70af8ff015508b8319c86c07e3bc9d7cbc62663d4eff70','{"inputs":{"x":"6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"},"params":{},"task":"square","v":"1","version":"1","workflow":"legacy"}','1','6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b',NULL,NULL,NULL,NULL,1796604319.6755,1.79660431967551374437e+09);
INSERT INTO "instances" VALUES(4,'legacy-20261207-02cf','square',2,1,1,'SUCCESS','14dd2b529127f08fc93b7a731d29688f3c9a4b73ba39361d237a7bdd400126a2','{"inputs":{"x":"d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35"},"params":{},"task":"square","v":"1","version":"1","workflow":"legacy"}','4','4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a',NULL,NULL,NULL,NULL,1.79660431967552375797e+09,1.79660431967552804946e+09);
INSERT INTO "instances" VALUES(5,'legacy-20261207-02cf','total',-1,1,1,'SUCCESS','fc2f37b98ae3da11fc081e6f95f8f304d30321ce36fb87df17f85117f303b444','{"inputs":{"xs":"731b22973afc65edef8375b47f415a4bca6463fe35e6c7614b36cfbe2eee7889"},"params":{},"task":"total","v":"1","version":"1","workflow":"legacy"}','5','ef2d127de37b942baad06145e54b0c619a1f22327b2ebbcfbec78f5564afe39d',NULL,NULL,NULL,NULL,1.79660431967591857909e+09,1.79660431967593026158e+09);
INSERT INTO "instances" VALUES(6,'legacy-20261207-10e2','items',-1,1,1,'SUCCESS','6d81a171582b4cb43cbabeb0aca5568b05f5046c1414871ec049dacd3b1d095f',NULL,NULL,'434026bd98ff2d8a2fb346c89ae9de006d1e2a6862832b6b3cd86e51de36d5c5',1,NULL,NULL,NULL,1.79660431968757152562e+09,1.79660431968757152562e+09);
INSERT INTO "instances" VALUES(7,'legacy-20261207-10e2','square',0,1,1,'SUCCESS','9e3964b968222a2f91b7e2cbf37d6bd756c63806f70eabaeaffd13ef1a190458',NULL,NULL,'5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9',2,NULL,NULL,NULL,1.79660431968832540509e+09,1.79660431968832540509e+09);
INSERT INTO "instances" VALUES(8,'legacy-20261207-10e2','square',1,1,1,'SUCCESS','86f702bbf6c3c9542b70af8ff015508b8319c86c07e3bc9d7cbc62663d4eff70',NULL,NULL,'6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b',3,NULL,NULL,NULL,1.79660431968832540509e+09,1.79660431968832540509e+09);
INSERT INTO "instances" VALUES(9,'legacy-20261207-10e2','square',2,1,1,'SUCCESS','14dd2b529127f08fc93b7a731d29688f3c9a4b73ba39361d237a7bdd400126a2',NULL,NULL,'4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a',4,NULL,NULL,NULL,1.79660431968832540509e+09,1.79660431968832540509e+09);
INSERT INTO "instances" VALUES(10,'legacy-20261207-10e2','total',-1,1,1,'SUCCESS','fc2f37b98ae3da11fc081e6f95f8f304d30321ce36fb87df17f85117f303b444',NULL,NULL,'ef2d127de37b942baad06145e54b0c619a1f22327b2ebbcfbec78f5564afe39d',5,NULL,NULL,NULL,1.79660431968865203855e+09,1.79660431968865203855e+09);
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
INSERT INTO "runs" VALUES('legacy-20261207-02cf','legacy','root','vm','/tmp/g4/r1','foreground','{"n":3}','{"force":false,"force_tasks":[],"verify":false,"max_workers":1,"on_error":"stop"}','SUCCESS',NULL,NULL,NULL,NULL,1.79660431964749407775e+09,1.79660431967624068267e+09,1.79660431967624068267e+09);
INSERT INTO "runs" VALUES('legacy-20261207-10e2','legacy','root','vm','/tmp/g4/r2','foreground','{"n":3}','{"force":false,"force_tasks":[],"verify":false,"max_workers":1,"on_error":"stop"}','SUCCESS',NULL,NULL,NULL,NULL,1.79660431967938256266e+09,1.79660431968905520434e+09,1.79660431968905520434e+09);
CREATE TABLE tasks (
    run_id    TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    task_name TEXT NOT NULL,
    position  INTEGER NOT NULL,
    is_array  INTEGER NOT NULL,
    spec      TEXT NOT NULL,
    expected  INTEGER,
    PRIMARY KEY (run_id, task_name)
) WITHOUT ROWID;
INSERT INTO "tasks" VALUES('legacy-20261207-02cf','items',0,0,'{"after": [], "array": false, "cache": true, "inputs": [], "params": {"n": "n"}, "resources": {"array_parallelism": null, "cpus": null, "mem": null, "time": null}, "returns": "list[int]", "version": "1"}',1);
INSERT INTO "tasks" VALUES('legacy-20261207-02cf','square',1,1,'{"after": [], "array": true, "cache": true, "inputs": [{"arg": "x", "mode": "fanout", "steps": ["items"]}], "params": {}, "resources": {"array_parallelism": null, "cpus": null, "mem": null, "time": null}, "returns": "int", "version": "1"}',3);
INSERT INTO "tasks" VALUES('legacy-20261207-02cf','total',2,0,'{"after": [], "array": false, "cache": true, "inputs": [{"arg": "xs", "mode": "gather", "steps": ["square"]}], "params": {}, "resources": {"array_parallelism": null, "cpus": null, "mem": null, "time": null}, "returns": "int", "version": "1"}',1);
INSERT INTO "tasks" VALUES('legacy-20261207-10e2','items',0,0,'{"after": [], "array": false, "cache": true, "inputs": [], "params": {"n": "n"}, "resources": {"array_parallelism": null, "cpus": null, "mem": null, "time": null}, "returns": "list[int]", "version": "1"}',1);
INSERT INTO "tasks" VALUES('legacy-20261207-10e2','square',1,1,'{"after": [], "array": true, "cache": true, "inputs": [{"arg": "x", "mode": "fanout", "steps": ["items"]}], "params": {}, "resources": {"array_parallelism": null, "cpus": null, "mem": null, "time": null}, "returns": "int", "version": "1"}',3);
INSERT INTO "tasks" VALUES('legacy-20261207-10e2','total',2,0,'{"after": [], "array": false, "cache": true, "inputs": [{"arg": "xs", "mode": "gather", "steps": ["square"]}], "params": {}, "resources": {"array_parallelism": null, "cpus": null, "mem": null, "time": null}, "returns": "int", "version": "1"}',1);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_graph ON runs (graph_name, created_at);
CREATE INDEX instances_current ON instances (run_id, task_name, state, cached_from)
    WHERE current = 1;
CREATE INDEX instances_cache ON instances (substr(identity, 1, 16)) WHERE cached_from IS NULL;
COMMIT;
