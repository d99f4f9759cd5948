CREATE SCHEMA IF NOT EXISTS "provisioner";
--> statement-breakpoint
CREATE TABLE "provisioner"."boot_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"node_id" integer,
	"mac" text,
	"client" text NOT NULL,
	"transport" text NOT NULL,
	"file" text NOT NULL,
	"bootenv" text,
	"bytes" bigint NOT NULL,
	"ok" boolean NOT NULL,
	"error" text,
	"at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "provisioner"."nodes" (
	"id" integer PRIMARY KEY NOT NULL,
	"summary" jsonb NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"source_time" timestamp (3) with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "provisioner"."outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "boot_events_node_idx" ON "provisioner"."boot_events" USING btree ("node_id","id");--> statement-breakpoint
CREATE INDEX "boot_events_mac_idx" ON "provisioner"."boot_events" USING btree ("mac","id");