/*
 * s3rver-fixes.js -- preloaded into s3rver 3.7.1 (`node -r tests/support/s3rver-fixes.js
 * .../s3rver/bin/s3rver.js ...`, still one process, so its PID is the server's) to correct
 * its ListObjects key enumeration, which differs from S3 in two ways that the object-store
 * conformance suite detects:
 *   1. keys come in directory-walk order, not UTF-8 byte order: "a/x" is listed before
 *      "a-b" because the directory "a" sorts before the file "a-b._S3rver_object";
 *   2. with a delimiter, a common prefix is only reported when an object sits directly
 *      below it: "t2/" is missing when the only object is "t2/01Z/meta.json".
 * The replacement walks the same directory tree, sorts keys by byte order and groups common
 * prefixes the way S3 does. It keeps s3rver's own paging contract (the controller turns the
 * last object key of a truncated page into the continuation token and only objects count
 * toward max-keys), so common prefixes that sort after the last object of a truncated page
 * are left for the next page. Everything else (XML, tokens, auth shape) stays s3rver's.
 *
 * Also: a ranged GET of an empty object gets 206 with "Content-Length: 1" and no body (the
 * client then waits for a byte that never comes); S3 answers 416 InvalidRange, and so does
 * s3rver with this fix. (Another quirk, "bytes=0-0" answered with the whole object as 206
 * "bytes 0-9/10", is left alone: the client trims ranges longer than asked.)
 */
'use strict';

const fs = require('fs');
const path = require('path');

const FilesystemStore = require(path.join(__dirname, '..', 'node', 'node_modules', 's3rver',
                                          'lib', 'stores', 'filesystem.js'));
const S3Object = require(path.join(__dirname, '..', 'node', 'node_modules', 's3rver', 'lib',
                                   'models', 'object.js'));

const SUFFIX = '._S3rver_object';

function byteCmp(a, b) {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function allKeys(dir, rel, out) {
  let names;
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    if (e.code === 'ENOENT') return;
    throw e;
  }
  for (const name of names) {
    const p = path.join(dir, name);
    const st = fs.statSync(p);
    if (st.isDirectory()) allKeys(p, rel + name + '/', out);
    else if (name.endsWith(SUFFIX)) out.push(rel + name.slice(0, -SUFFIX.length));
  }
}

FilesystemStore.prototype.listObjects = async function listObjects(bucket, options) {
  const { delimiter = '', startAfter = '', prefix = '', maxKeys = Infinity } = options;
  if (process.platform === 'win32') throw new Error('s3rver-fixes: POSIX only');
  const keys = [];
  const base = prefix.slice(0, prefix.lastIndexOf('/') + 1); /* only walk below the prefix */
  allKeys(path.join(this.getBucketPath(bucket), base), base, keys);
  keys.sort(byteCmp);

  const objects = [];
  const prefixes = [];
  let isTruncated = false;
  for (const key of keys) {
    if (!key.startsWith(prefix)) continue;
    if (delimiter) {
      const idx = key.slice(prefix.length).indexOf(delimiter);
      if (idx !== -1) {
        const cp = key.slice(0, prefix.length + idx + delimiter.length);
        if (byteCmp(cp, startAfter) > 0 && prefixes[prefixes.length - 1] !== cp) {
          prefixes.push(cp);
        }
        continue;
      }
    }
    if (startAfter && byteCmp(key, startAfter) <= 0) continue;
    if (objects.length >= maxKeys) {
      isTruncated = true;
      break;
    }
    objects.push(key);
  }
  let commonPrefixes = prefixes;
  if (isTruncated) {
    const last = objects[objects.length - 1];
    commonPrefixes = prefixes.filter((p) => byteCmp(p, last) < 0);
  }
  const metadata = await Promise.all(objects.map((key) =>
    this.getMetadata(bucket, key).catch((err) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    })));
  return {
    objects: objects
      .map((key, i) => [key, metadata[i]])
      .filter(([, m]) => m !== undefined)
      .map(([key, m]) => new S3Object(bucket, key, null, m)),
    commonPrefixes,
    isTruncated,
  };
};

const origGetObject = FilesystemStore.prototype.getObject;
FilesystemStore.prototype.getObject = async function getObject(bucket, key, options) {
  if (options && (options.start !== undefined || options.end !== undefined)) {
    let md = null;
    try {
      md = await this.getMetadata(bucket, key);
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
    }
    if (md && Number(md['content-length']) === 0) {
      const object = new S3Object(bucket, key, null, md);
      object.range = { start: options.start || 0, end: 0 };
      return object; /* range without content: the controller answers 416 InvalidRange */
    }
  }
  return origGetObject.call(this, bucket, key, options);
};
