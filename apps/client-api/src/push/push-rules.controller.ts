import { Body, Controller, Delete, Get, HttpCode, Param, Put, Query, UseGuards } from '@nestjs/common';
import { AccessTokenGuard, CurrentRequester, Errors, requireJsonObject, type Requester } from '@atrium/http';
import {
  deleteRule,
  findRule,
  isPushRuleKind,
  putRule,
  setRuleActions,
  setRuleEnabled,
  type PushAction,
  type PushRule,
  type PushRuleKind,
  type PushRuleset,
} from '@atrium/matrix';
import { PushStores } from '@atrium/push';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { asMatrixError } from './push.stores';

/** The kind path parameter: "The kind of rule" (pushrules.yaml enum), else 400 M_INVALID_PARAM. */
function requireKind(kind: string): PushRuleKind {
  if (!isPushRuleKind(kind)) throw Errors.invalidParam(`Unknown push rule kind: ${kind}`);
  return kind;
}

function optionalQuery(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw Errors.invalidParam(`${name} must be a rule ID`);
  return value;
}

/**
 * The push rules API (client-server-api "Push Rules: API";
 * data/api/client-server/pushrules.yaml). Rules are the `m.push_rules`
 * account data (libs/push PushRulesStore), so every change reaches the
 * user's clients through /sync's account_data. Only the `global` scope
 * exists; other paths fall to the router's 404 M_UNRECOGNIZED.
 */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class PushRulesController {
  constructor(private readonly push: PushStores) {}

  /**
   * GET /pushrules/: "Retrieve all push rulesets for this user": `{ global: ruleset }`;
   * GET /pushrules/global/: the global ruleset itself. The spec's paths end
   * in a slash, which Nest strips from route paths, so they are served by a
   * wildcard (more specific routes win in Fastify's router); the slash-less
   * forms are accepted too.
   */
  @Get('pushrules')
  async all(@CurrentRequester() requester: Requester): Promise<{ global: PushRuleset }> {
    return { global: await this.push.rules.get(requester.userId) };
  }

  @Get('pushrules/global')
  global(@CurrentRequester() requester: Requester): Promise<PushRuleset> {
    return this.push.rules.get(requester.userId);
  }

  @Get('pushrules/*')
  async withSlash(@CurrentRequester() requester: Requester, @Param('*') rest: string | undefined): Promise<PushRuleset | { global: PushRuleset }> {
    if (rest === undefined || rest === '') return this.all(requester);
    if (rest === 'global/') return this.global(requester);
    throw Errors.unrecognized('Unrecognized request');
  }

  @Get('pushrules/global/:kind/:ruleId')
  getRule(@CurrentRequester() requester: Requester, @Param('kind') kind: string, @Param('ruleId') ruleId: string): Promise<PushRule> {
    return this.findUserRule(requester.userId, kind, ruleId);
  }

  /** PUT: create or update a user rule; `before`/`after` place it (pushrules.yaml setPushRule). */
  @Put('pushrules/global/:kind/:ruleId')
  @HttpCode(200)
  async setRule(
    @CurrentRequester() requester: Requester,
    @Param('kind') kind: string,
    @Param('ruleId') ruleId: string,
    @Query('before') before: unknown,
    @Query('after') after: unknown,
    @Body() body: unknown,
  ): Promise<Record<string, never>> {
    const k = requireKind(kind);
    const content = requireJsonObject(body);
    const options = { before: optionalQuery(before, 'before'), after: optionalQuery(after, 'after') };
    await asMatrixError(() => this.push.rules.update(requester.userId, (rules) => putRule(rules, k, ruleId, content, options)));
    return {};
  }

  /** DELETE: user rules only; a server-default rule is 400 (it can be disabled instead). */
  @Delete('pushrules/global/:kind/:ruleId')
  async deleteRule(@CurrentRequester() requester: Requester, @Param('kind') kind: string, @Param('ruleId') ruleId: string): Promise<Record<string, never>> {
    const k = requireKind(kind);
    await asMatrixError(() => this.push.rules.update(requester.userId, (rules) => deleteRule(rules, k, ruleId)));
    return {};
  }

  @Get('pushrules/global/:kind/:ruleId/enabled')
  async isEnabled(@CurrentRequester() requester: Requester, @Param('kind') kind: string, @Param('ruleId') ruleId: string): Promise<{ enabled: boolean }> {
    return { enabled: (await this.findUserRule(requester.userId, kind, ruleId)).enabled };
  }

  @Put('pushrules/global/:kind/:ruleId/enabled')
  @HttpCode(200)
  async setEnabled(
    @CurrentRequester() requester: Requester,
    @Param('kind') kind: string,
    @Param('ruleId') ruleId: string,
    @Body() body: unknown,
  ): Promise<Record<string, never>> {
    return this.editRule(requester.userId, kind, ruleId, body, setRuleEnabled);
  }

  @Get('pushrules/global/:kind/:ruleId/actions')
  async getActions(@CurrentRequester() requester: Requester, @Param('kind') kind: string, @Param('ruleId') ruleId: string): Promise<{ actions: PushAction[] }> {
    return { actions: (await this.findUserRule(requester.userId, kind, ruleId)).actions };
  }

  @Put('pushrules/global/:kind/:ruleId/actions')
  @HttpCode(200)
  async setActions(
    @CurrentRequester() requester: Requester,
    @Param('kind') kind: string,
    @Param('ruleId') ruleId: string,
    @Body() body: unknown,
  ): Promise<Record<string, never>> {
    return this.editRule(requester.userId, kind, ruleId, body, setRuleActions);
  }

  /** The user's rule (400 M_INVALID_PARAM for an unknown kind, 404 M_NOT_FOUND for a missing rule). */
  private async findUserRule(userId: string, kind: string, ruleId: string): Promise<PushRule> {
    const k = requireKind(kind);
    const rules = await this.push.rules.get(userId);
    return asMatrixError(async () => findRule(rules, k, ruleId));
  }

  /** Changes one rule with `edit` from a JSON object body (the `enabled` and `actions` PUTs). */
  private async editRule(
    userId: string,
    kind: string,
    ruleId: string,
    body: unknown,
    edit: (rules: PushRuleset, kind: PushRuleKind, ruleId: string, content: Record<string, unknown>) => PushRuleset,
  ): Promise<Record<string, never>> {
    const k = requireKind(kind);
    const content = requireJsonObject(body);
    await asMatrixError(() => this.push.rules.update(userId, (rules) => edit(rules, k, ruleId, content)));
    return {};
  }
}
