export { PushGatewayModule } from './push-gateway.module';
