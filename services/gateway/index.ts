import { runMain } from '../../shared/service/main.js';
import { gatewayService } from './service.js';

await runMain(gatewayService, process);
