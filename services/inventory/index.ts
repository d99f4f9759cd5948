import { runMain } from '../../shared/service/main.js';
import { inventoryService } from './service.js';

await runMain(inventoryService, process);
