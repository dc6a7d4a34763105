/**
 * Event authorization: the authorization rules of every room version
 * (content/rooms/vN.md "Authorization rules"), auth events selection
 * (server-server-api.md), power levels as the rules read them, and the
 * room version 3+ check applied when a redaction is shown.
 */
export { authorizeEvent, type AuthResult, type AuthorizeOptions } from './authorize';
export { authEventKeys, checkAuthEvents, type AuthEventsCheck } from './auth-events';
export {
  userPowerLevel,
  levelOfUser,
  readPowerLevels,
  parsePowerLevelValue,
  requiredPowerLevel,
  roomCreators,
  POWER_LEVEL_DEFAULTS,
  POWER_LEVEL_PROPERTIES,
  NOTIFICATIONS_ROOM_DEFAULT,
  type AuthStateLookup,
  type PowerLevels,
  type PowerLevelProperty,
} from './power-levels';
export { redactionApplies } from './redaction-check';
