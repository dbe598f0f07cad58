// A local stand-in for the Hugging Face Hub, serving repos from memory in the Hub's URL layout as
// @huggingface/hub requests them: /api/{models|datasets}/{id}/revision/{rev} (sha + siblings),
// /api/datasets/{id}/tree/{rev} (file list), /[datasets/]{id}/resolve/{rev}/{path} (Range requests,
// ETag = git sha1 for small files, X-Linked-ETag = sha256 for LFS-sized ones, X-Error-Code on 404);
// and uploads as uploadFiles makes them: /api/models/{id} (exists?), /api/repos/create,
// /api/models/{id}/preupload/{rev}, /{id}.git/info/lfs/objects/batch (basic transfer), PUT of the
// LFS bytes, and /api/models/{id}/commit/{rev} (NDJSON: header, file, lfsFile).
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One repo of the fake Hub. */
export interface FakeRepo {
  type: "model" | "dataset";
  id: string;
  /** The commit every revision name resolves to. */
  sha: string;
  files: Record<string, Uint8Array>;
  /** When set, requests must carry `Authorization: Bearer <token>`. */
  token?: string;
}

/** A request the fake Hub saw. */
export interface SeenRequest {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
}

/** A running fake Hub: its endpoint, the requests it saw, and a stop(). */
export interface FakeHub {
  endpoint: string;
  requests: SeenRequest[];
  /** Cut the next body of `path` after `bytes` bytes (the connection drops mid-transfer). */
  cutNext(path: string, bytes: number): void;
  stop(): Promise<void>;
}

const LFS_MIN_BYTES = 1024;

function gitSha1(data: Uint8Array): string {
  return createHash("sha1").update(`blob ${data.byteLength}\0`).update(data).digest("hex");
}

function isLfs(data: Uint8Array): boolean {
  return data.byteLength >= LFS_MIN_BYTES;
}

/** Start a fake Hub on 127.0.0.1 (a free port) serving `repos`. */
export async function startFakeHub(repos: FakeRepo[]): Promise<FakeHub> {
  const requests: SeenRequest[] = [];
  const cuts = new Map<string, number>();
  const find = (type: string, id: string) => repos.find((r) => r.type === type && r.id === id);
  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "Content-Type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  const authorized = (repo: FakeRepo, req: IncomingMessage) => !repo.token || req.headers.authorization === `Bearer ${repo.token}`;

  const lfs = new Map<string, Uint8Array>();
  let commits = 0;
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? "/", "http://x");
    requests.push({ method: req.method ?? "GET", url: url.pathname + url.search, range: req.headers.range, authorization: req.headers.authorization });
    const path = decodeURIComponent(url.pathname);
    const writable = (id: string) => {
      const repo = find("model", id);
      if (repo && !authorized(repo, req)) return null;
      return repo ?? null;
    };
    if (req.method === "GET" && /^\/api\/models\/[^/]+\/[^/]+$/.test(path)) {
      const repo = find("model", path.slice("/api/models/".length));
      return repo && authorized(repo, req) ? json(res, 200, { id: repo.id }) : json(res, 404, { error: "Repository not found" });
    }
    if (req.method === "POST" && path === "/api/repos/create") {
      const { name, organization } = JSON.parse(body.toString()) as { name: string; organization?: string };
      const id = organization ? `${organization}/${name}` : name;
      repos.push({ type: "model", id, sha: "0".repeat(40), files: {}, token: req.headers.authorization?.slice("Bearer ".length) });
      return json(res, 200, { url: `http://x/${id}` });
    }
    let up = /^\/api\/models\/([^/]+\/[^/]+)\/(preupload|commit)\/([^/]+)$/.exec(path);
    if (req.method === "POST" && up) {
      const repo = writable(up[1]!);
      if (!repo) return json(res, 401, { error: "Invalid credentials in Authorization header" });
      if (up[2] === "preupload") {
        const { files } = JSON.parse(body.toString()) as { files: { path: string; size: number }[] };
        return json(res, 200, { files: files.map((f) => ({ path: f.path, uploadMode: f.size >= LFS_MIN_BYTES ? "lfs" : "regular" })) });
      }
      for (const line of body.toString().split("\n").filter(Boolean)) {
        const { key, value } = JSON.parse(line) as { key: string; value: { path: string; content?: string; oid?: string } };
        if (key === "file") repo.files[value.path] = Buffer.from(value.content!, "base64");
        else if (key === "lfsFile") {
          const data = lfs.get(value.oid!);
          if (!data) return json(res, 400, { error: `LFS object ${value.oid} was never uploaded` });
          repo.files[value.path] = data;
        }
      }
      repo.sha = createHash("sha1").update(`commit ${++commits}`).digest("hex");
      return json(res, 200, { commitOid: repo.sha, commitUrl: `http://x/${repo.id}/commit/${repo.sha}` });
    }
    up = /^\/([^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/.exec(path);
    if (req.method === "POST" && up) {
      const { objects } = JSON.parse(body.toString()) as { objects: { oid: string; size: number }[] };
      const base = `http://${req.headers.host}`;
      return json(res, 200, { transfer: "basic", objects: objects.map((o) => ({ ...o, actions: lfs.has(o.oid) ? undefined : { upload: { href: `${base}/lfs-upload/${o.oid}` } } })) });
    }
    if (req.method === "PUT" && path.startsWith("/lfs-upload/")) {
      const oid = path.slice("/lfs-upload/".length);
      if (createHash("sha256").update(body).digest("hex") !== oid) return json(res, 400, { error: "sha256 mismatch" });
      lfs.set(oid, new Uint8Array(body));
      res.writeHead(200, { ETag: `"${oid}"` });
      return res.end();
    }
    let m = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)$/.exec(path);
    if (m) {
      const repo = find(m[1] === "models" ? "model" : "dataset", m[2]!);
      if (!repo) return json(res, 404, { error: "Repository not found" }, { "X-Error-Code": "RepoNotFound" });
      if (!authorized(repo, req)) return json(res, 401, { error: "Invalid credentials in Authorization header" });
      if (m[3] === "tree") {
        return json(res, 200, Object.entries(repo.files).map(([p, d]) => ({ type: "file", path: p, size: d.byteLength, oid: gitSha1(d) })));
      }
      return json(res, 200, {
        _id: `id-${repo.id}`, id: repo.id, sha: repo.sha, private: false, gated: false, downloads: 0, likes: 0,
        lastModified: "2026-01-01T00:00:00.000Z", siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })),
      });
    }
    m = /^\/(datasets\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (m) {
      const repo = find(m[1] ? "dataset" : "model", m[2]!);
      if (!repo) return json(res, 404, { error: "Repository not found" }, { "X-Error-Code": "RepoNotFound" });
      if (!authorized(repo, req)) return json(res, 401, { error: "Invalid credentials in Authorization header" });
      const data = repo.files[m[4]!];
      if (!data) return json(res, 404, { error: "Entry not found" }, { "X-Error-Code": "EntryNotFound" });
      const etag = isLfs(data) ? createHash("sha256").update(data).digest("hex") : gitSha1(data);
      const headers: Record<string, string> = { "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", ETag: `"${isLfs(data) ? gitSha1(data) : etag}"`, "X-Repo-Commit": repo.sha };
      if (isLfs(data)) headers["X-Linked-ETag"] = `"${etag}"`;
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
      let start = 0;
      let end = data.byteLength; // exclusive
      if (range) {
        start = Number(range[1]);
        end = range[2] ? Math.min(Number(range[2]) + 1, data.byteLength) : data.byteLength;
        headers["Content-Range"] = `bytes ${start}-${end - 1}/${data.byteLength}`;
      }
      let body = data.subarray(start, end);
      const cut = cuts.get(m[4]!);
      if (cut !== undefined && body.byteLength > 1) {
        cuts.delete(m[4]!);
        headers["Content-Length"] = String(body.byteLength);
        res.writeHead(range ? 206 : 200, headers);
        res.write(body.subarray(0, cut), () => res.destroy());
        return;
      }
      headers["Content-Length"] = String(body.byteLength);
      res.writeHead(range ? 206 : 200, headers);
      if (req.method === "HEAD") body = new Uint8Array(0);
      res.end(body);
      return;
    }
    json(res, 404, { error: `fake hub: no route for ${path}` });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    cutNext: (path, bytes) => cuts.set(path, bytes),
    stop: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
