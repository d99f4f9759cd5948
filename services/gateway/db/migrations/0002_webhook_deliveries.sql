CREATE TABLE "gateway"."webhook_deliveries" (
	"webhook_id" integer NOT NULL,
	"seq" bigint NOT NULL,
	"event_id" text,
	"type" text NOT NULL,
	"node" text,
	"status" text NOT NULL,
	"attempts" integer NOT NULL,
	"http_status" integer,
	"error" text,
	"duration_ms" integer NOT NULL,
	"first_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"delivered_at" timestamp with time zone,
	"redeliveries" integer DEFAULT 0 NOT NULL,
	CONSTRAINT "webhook_deliveries_pk" PRIMARY KEY("webhook_id","seq")
);
--> statement-breakpoint
ALTER TABLE "gateway"."webhooks" ADD COLUMN "dead_lettered" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "gateway"."webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_webhook_id_webhooks_id_fk" FOREIGN KEY ("webhook_id") REFERENCES "gateway"."webhooks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "webhook_deliveries_status" ON "gateway"."webhook_deliveries" USING btree ("webhook_id","status","seq");