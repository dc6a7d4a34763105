import { Body, Controller, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { AccessTokenGuard, CurrentRequester, Errors, requireJsonObject, type Requester } from '@atrium/http';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { parseFilterOrThrow } from './filter-errors';
import { FilterStore } from './filter-store';

/** Spec: data/api/client-server/filter.yaml ("Filtering"). */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class FilterController {
  constructor(private readonly filters: FilterStore) {}

  /**
   * POST /user/{userId}/filter. A user may only upload filters for themselves
   * (403 M_FORBIDDEN otherwise, as for other /user/{userId} endpoints); the
   * body must be a valid Filter (M_BAD_JSON / M_INVALID_PARAM naming the field).
   */
  @Post('user/:userId/filter')
  @HttpCode(200)
  async create(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Body() rawBody: unknown): Promise<{ filter_id: string }> {
    if (userId !== requester.userId) throw Errors.forbidden('Cannot create filters for other users');
    const body = requireJsonObject(rawBody);
    parseFilterOrThrow(body);
    return { filter_id: await this.filters.put(userId, body) };
  }

  /** GET /user/{userId}/filter/{filterId}: 404 "Unknown filter". */
  @Get('user/:userId/filter/:filterId')
  async get(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('filterId') filterId: string): Promise<Record<string, unknown>> {
    if (userId !== requester.userId) throw Errors.forbidden('Cannot get filters for other users');
    const filter = await this.filters.getRaw(userId, filterId);
    if (!filter) throw Errors.notFound('Unknown filter');
    return filter;
  }
}
