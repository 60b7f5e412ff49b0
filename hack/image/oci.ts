// Container images without a container engine: an OCI image layout, written as one tar that
// `ctr images import` and `skopeo copy oci-archive:` read. Everything that could vary between two
// builds of the same inputs (file order, timestamps, owners' names, gzip headers) is fixed, so
// the same inputs give the same digest.
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";

export interface ImageEntry {
  /** Path inside the image, without a leading slash (`usr/local/bin/node`). */
  path: string;
  type: "file" | "dir" | "symlink";
  /** Permission bits; default 0o644 for files, 0o755 for folders, 0o777 for links. */
  mode?: number;
  uid?: number;
  gid?: number;
  content?: Buffer | string;
  /** A symlink's target. */
  target?: string;
}

export interface ImageConfig {
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  /** `uid:gid` or a name in the image's /etc/passwd. */
  user?: string;
  workingDir?: string;
  labels?: Record<string, string>;
  exposedPorts?: number[];
}

export interface ImageSpec {
  /** The name containerd files the image under, e.g. `localhost/pause:3.10`. */
  name: string;
  /** Each layer a list of entries; parent folders are added where missing. */
  layers: ImageEntry[][];
  config: ImageConfig;
  architecture?: "amd64" | "arm64";
  /** RFC 3339; the default, the Unix epoch, keeps builds reproducible. */
  created?: string;
  /** gzip level of the layers, default 9; 6 halves the time for large binaries at ~0.3 % in size. */
  compressionLevel?: number;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface BuiltImage {
  /** The image archive: OCI image layout in a tar. */
  archive: Buffer;
  /** The digest of the image manifest: what a registry and containerd show for it. */
  digest: string;
  manifest: Descriptor;
  config: Descriptor;
  layers: (Descriptor & { diffID: string })[];
}

const blockSize = 512;

function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\0`;
}

/** A PAX extended header carrying what ustar fields cannot (long paths and link targets). */
function paxRecords(records: Record<string, string>): Buffer {
  let out = "";
  for (const [key, value] of Object.entries(records)) {
    const body = ` ${key}=${value}\n`;
    // The length prefix counts itself, so find the fixed point.
    let length = Buffer.byteLength(body);
    while (String(length + String(length).length).length !== String(length).length) length += 1;
    length += String(length).length;
    out += `${length}${body}`;
  }
  return Buffer.from(out);
}

function header(
  name: string,
  typeflag: string,
  size: number,
  mode: number,
  uid: number,
  gid: number,
  linkname = "",
): Buffer {
  const block = Buffer.alloc(blockSize);
  block.write(name, 0, 100, "utf8");
  block.write(octal(mode & 0o7777, 8), 100, "ascii");
  block.write(octal(uid, 8), 108, "ascii");
  block.write(octal(gid, 8), 116, "ascii");
  block.write(octal(size, 12), 124, "ascii");
  block.write(octal(0, 12), 136, "ascii");
  block.write("        ", 148, "ascii");
  block.write(typeflag, 156, "ascii");
  block.write(linkname, 157, 100, "utf8");
  block.write("ustar\0", 257, "ascii");
  block.write("00", 263, "ascii");
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return block;
}

function padded(content: Buffer): Buffer[] {
  const rest = content.length % blockSize;
  return rest === 0 ? [content] : [content, Buffer.alloc(blockSize - rest)];
}

interface TarEntry {
  path: string;
  typeflag: "0" | "2" | "5";
  mode: number;
  uid: number;
  gid: number;
  content: Buffer;
  linkname: string;
}

/** A deterministic tar: entries in the order given, every timestamp zero, no owner names. */
export function tar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const pax: Record<string, string> = {};
    let name = entry.path;
    if (Buffer.byteLength(name) > 99) {
      pax.path = name;
      name = name.slice(0, 99);
    }
    let linkname = entry.linkname;
    if (Buffer.byteLength(linkname) > 99) {
      pax.linkpath = linkname;
      linkname = linkname.slice(0, 99);
    }
    if (Object.keys(pax).length > 0) {
      const records = paxRecords(pax);
      parts.push(header("PaxHeader", "x", records.length, 0o644, 0, 0), ...padded(records));
    }
    parts.push(
      header(name, entry.typeflag, entry.content.length, entry.mode, entry.uid, entry.gid, linkname),
    );
    if (entry.content.length > 0) parts.push(...padded(entry.content));
  }
  parts.push(Buffer.alloc(blockSize * 2));
  return Buffer.concat(parts);
}

function normalise(path: string): string {
  const clean = path.replace(/^\/+/, "").replace(/\/+$/, "");
  if (clean === "" || clean.split("/").some((part) => part === ".." || part === "." || part === "")) {
    throw new Error(`image entry path ${JSON.stringify(path)} is not a clean relative path`);
  }
  return clean;
}

/** The layer's entries sorted by path, with every missing parent folder added as root's 0755. */
function layerEntries(entries: ImageEntry[]): TarEntry[] {
  const byPath = new Map<string, TarEntry>();
  for (const entry of entries) {
    const path = normalise(entry.path);
    if (byPath.has(path)) throw new Error(`image layer lists ${path} twice`);
    const uid = entry.uid ?? 0;
    const gid = entry.gid ?? 0;
    if (entry.type === "dir") {
      byPath.set(path, {
        path: `${path}/`,
        typeflag: "5",
        mode: entry.mode ?? 0o755,
        uid,
        gid,
        content: Buffer.alloc(0),
        linkname: "",
      });
    } else if (entry.type === "symlink") {
      if (!entry.target) throw new Error(`image symlink ${path} has no target`);
      byPath.set(path, {
        path,
        typeflag: "2",
        mode: entry.mode ?? 0o777,
        uid,
        gid,
        content: Buffer.alloc(0),
        linkname: entry.target,
      });
    } else {
      const content =
        typeof entry.content === "string" ? Buffer.from(entry.content) : (entry.content ?? Buffer.alloc(0));
      byPath.set(path, { path, typeflag: "0", mode: entry.mode ?? 0o644, uid, gid, content, linkname: "" });
    }
  }
  for (const path of [...byPath.keys()]) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      if (!byPath.has(parent)) {
        byPath.set(parent, {
          path: `${parent}/`,
          typeflag: "5",
          mode: 0o755,
          uid: 0,
          gid: 0,
          content: Buffer.alloc(0),
          linkname: "",
        });
      }
    }
  }
  return [...byPath.keys()].sort().map((path) => byPath.get(path)!);
}

/** Builds the image in memory. */
export function buildImage(spec: ImageSpec): BuiltImage {
  const blobs = new Map<string, Buffer>();
  const layers = spec.layers.map((entries) => {
    const raw = tar(layerEntries(entries));
    // A fixed level and a zero mtime in the gzip header: the same bytes for the same layer.
    const compressed = gzipSync(raw, { level: spec.compressionLevel ?? 9 });
    const digest = sha256(compressed);
    blobs.set(digest, compressed);
    return {
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest,
      size: compressed.length,
      diffID: sha256(raw),
    };
  });
  const created = spec.created ?? "1970-01-01T00:00:00Z";
  const config = {
    created,
    architecture: spec.architecture ?? "amd64",
    os: "linux",
    config: {
      ...(spec.config.user ? { User: spec.config.user } : {}),
      ...(spec.config.exposedPorts?.length
        ? { ExposedPorts: Object.fromEntries(spec.config.exposedPorts.map((port) => [`${port}/tcp`, {}])) }
        : {}),
      ...(spec.config.env ? { Env: spec.config.env } : {}),
      ...(spec.config.entrypoint ? { Entrypoint: spec.config.entrypoint } : {}),
      ...(spec.config.cmd ? { Cmd: spec.config.cmd } : {}),
      ...(spec.config.workingDir ? { WorkingDir: spec.config.workingDir } : {}),
      ...(spec.config.labels ? { Labels: spec.config.labels } : {}),
    },
    rootfs: { type: "layers", diff_ids: layers.map((layer) => layer.diffID) },
    history: layers.map(() => ({ created, created_by: "hack/image/oci.ts" })),
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDescriptor = {
    mediaType: "application/vnd.oci.image.config.v1+json",
    digest: sha256(configBytes),
    size: configBytes.length,
  };
  blobs.set(configDescriptor.digest, configBytes);
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: configDescriptor,
    layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
    ...(spec.config.labels ? { annotations: spec.config.labels } : {}),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDescriptor = {
    mediaType: manifest.mediaType,
    digest: sha256(manifestBytes),
    size: manifestBytes.length,
  };
  blobs.set(manifestDescriptor.digest, manifestBytes);
  const index = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      {
        ...manifestDescriptor,
        annotations: {
          // containerd names an imported image after this; skopeo and others read the OCI one.
          "io.containerd.image.name": spec.name,
          "org.opencontainers.image.ref.name": spec.name.slice(spec.name.lastIndexOf(":") + 1),
        },
      },
    ],
  };
  const file = (path: string, content: Buffer | string): TarEntry => ({
    path,
    typeflag: "0",
    mode: 0o644,
    uid: 0,
    gid: 0,
    content: Buffer.from(content),
    linkname: "",
  });
  const dir = (path: string): TarEntry => ({
    path,
    typeflag: "5",
    mode: 0o755,
    uid: 0,
    gid: 0,
    content: Buffer.alloc(0),
    linkname: "",
  });
  const archive = tar([
    file("oci-layout", JSON.stringify({ imageLayoutVersion: "1.0.0" })),
    file("index.json", JSON.stringify(index)),
    dir("blobs/"),
    dir("blobs/sha256/"),
    ...[...blobs.keys()]
      .sort()
      .map((digest) => file(`blobs/sha256/${digest.slice("sha256:".length)}`, blobs.get(digest)!)),
  ]);
  return {
    archive,
    digest: manifestDescriptor.digest,
    manifest: manifestDescriptor,
    config: configDescriptor,
    layers,
  };
}
