// A RestClient that speaks the install's group names to the cluster while its callers keep the
// code's (upstream's client middleware, internal/groupsuffix): requests to a Concierge group go
// to the served group with their objects' apiVersion and owner references mapped, and what comes
// back is mapped back, so reconcilers and informers never see the suffix.
import type { GroupSuffix } from "./groupsuffix.ts";
import { isObject } from "./isobject.ts";
import type { RequestOptions, RestClient, StreamOptions } from "./rest.ts";

export function groupSuffixClient(inner: RestClient, groups: GroupSuffix): RestClient {
  if (groups.isDefault) return inner;
  return {
    async request<T>(options: RequestOptions): Promise<T> {
      const { path, mapped } = groups.servedPath(options.path);
      const body =
        options.body === undefined || typeof options.body === "string"
          ? options.body
          : groups.servedObject(options.body);
      const result = await inner.request<T>({ ...options, path, ...(body === undefined ? {} : { body }) });
      return mapped ? groups.internalObject(result) : result;
    },
    stream(options: StreamOptions): Promise<void> {
      const { path, mapped } = groups.servedPath(options.path);
      if (!mapped) return inner.stream(options);
      // Watch events of our own kinds: few, small, and the only lines that name a served group.
      const tail = `.${groups.suffix}/`;
      return inner.stream({
        ...options,
        path,
        onLine: (line) => {
          if (!line.includes(tail)) return options.onLine(line);
          let event: unknown;
          try {
            event = JSON.parse(line);
          } catch {
            // Not JSON: the informer decodes it and reports it, as it would any other bad line.
            return options.onLine(line);
          }
          if (!isObject(event)) return options.onLine(line);
          options.onLine(JSON.stringify({ ...event, object: groups.internalObject(event.object) }));
        },
      });
    },
    ...(inner.close ? { close: () => inner.close?.() } : {}),
  };
}
