CREATE SCHEMA IF NOT EXISTS "dns_db";
--> statement-breakpoint
CREATE TABLE "dns_db"."allocations" (
	"id" integer PRIMARY KEY NOT NULL,
	"node_id" integer NOT NULL,
	"summary" jsonb NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"source_time" timestamp (3) with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "dns_db"."meta" (
	"key" text PRIMARY KEY NOT NULL,
	"value" jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "dns_db"."name_filters" (
	"id" serial PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"matcher" text NOT NULL,
	"priority" integer NOT NULL,
	"template" text NOT NULL,
	"service" text DEFAULT 'system' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "name_filters_name_unique" UNIQUE("name"),
	CONSTRAINT "name_filters_priority_unique" UNIQUE("priority")
);
--> statement-breakpoint
CREATE TABLE "dns_db"."nodes" (
	"id" integer PRIMARY KEY NOT NULL,
	"summary" jsonb NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"source_time" timestamp (3) with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "dns_db"."outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "dns_db"."records" (
	"allocation_id" integer NOT NULL,
	"filter_id" integer NOT NULL,
	"type" text NOT NULL,
	"zone" text NOT NULL,
	"name" text NOT NULL,
	"data" text NOT NULL,
	CONSTRAINT "records_allocation_id_filter_id_type_pk" PRIMARY KEY("allocation_id","filter_id","type")
);
--> statement-breakpoint
CREATE TABLE "dns_db"."zones" (
	"name" text PRIMARY KEY NOT NULL,
	"serial" bigint NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "allocations_node_idx" ON "dns_db"."allocations" USING btree ("node_id");--> statement-breakpoint
CREATE INDEX "records_zone_idx" ON "dns_db"."records" USING btree ("zone");