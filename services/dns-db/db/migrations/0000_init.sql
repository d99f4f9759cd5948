CREATE SCHEMA IF NOT EXISTS "dns_db";
--> statement-breakpoint
CREATE TABLE "dns_db"."outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
