export { ClientApiModule } from './client-api.module';
export { AuthService } from './auth/auth.service';
