import 'reflect-metadata';
import { RequestMethod, type DynamicModule, type Type } from '@nestjs/common';
import { METHOD_METADATA, MODULE_METADATA, PATH_METADATA } from '@nestjs/common/constants';

/**
 * The HTTP routes a set of Nest modules serves, read from the controllers'
 * decorator metadata (no app is started). `scripts/coverage-endpoints.mjs`
 * compares them with the spec's endpoint list.
 */
export interface RouteEntry {
  method: string;
  /** Nest/Fastify form: `/_matrix/client/v3/profile/:userId`. */
  path: string;
  controller: string;
}

type ModuleRef = Type<unknown> | DynamicModule | Promise<DynamicModule>;

function asArray(value: unknown): string[] {
  if (value === undefined) return [''];
  return Array.isArray(value) ? (value as string[]) : [value as string];
}

function join(prefix: string, path: string): string {
  const joined = `/${prefix}/${path}`.replace(/\/+/g, '/');
  return joined.length > 1 ? joined.replace(/\/$/, '') : joined;
}

function controllersOf(ref: ModuleRef, seen: Set<unknown>, out: Array<Type<unknown>>): void {
  if (ref instanceof Promise || seen.has(ref)) return;
  seen.add(ref);
  const dynamic = typeof ref === 'object' ? ref : undefined;
  const moduleClass = dynamic ? dynamic.module : (ref as Type<unknown>);
  const controllers = [
    ...((Reflect.getMetadata(MODULE_METADATA.CONTROLLERS, moduleClass) as Array<Type<unknown>> | undefined) ?? []),
    ...(dynamic?.controllers ?? []),
  ];
  out.push(...controllers);
  const imports = [
    ...((Reflect.getMetadata(MODULE_METADATA.IMPORTS, moduleClass) as ModuleRef[] | undefined) ?? []),
    ...((dynamic?.imports ?? []) as ModuleRef[]),
  ];
  for (const imported of imports) if (imported) controllersOf(imported, seen, out);
}

export function listRoutes(modules: ModuleRef[]): RouteEntry[] {
  const controllers: Array<Type<unknown>> = [];
  const seen = new Set<unknown>();
  for (const module of modules) controllersOf(module, seen, controllers);
  const routes: RouteEntry[] = [];
  for (const controller of new Set(controllers)) {
    const prefixes = asArray(Reflect.getMetadata(PATH_METADATA, controller));
    const proto = controller.prototype as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (name === 'constructor') continue;
      const handler = proto[name];
      if (typeof handler !== 'function') continue;
      const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
      if (method === undefined) continue;
      for (const prefix of prefixes) {
        for (const path of asArray(Reflect.getMetadata(PATH_METADATA, handler))) {
          routes.push({ method: RequestMethod[method], path: join(prefix, path), controller: controller.name });
        }
      }
    }
  }
  return routes;
}
